//! What runs inside the containers: per kind of component, the command that streams its dump
//! out, the one that loads a dump back in, and the one that measures what a database holds.
//! Each is a POSIX `sh` script run with `sh -c SCRIPT nua NAME…`, so nothing secret is ever
//! an argument: passwords come from the container's own environment.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a component is, and so how it is dumped and restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Postgres,
    Mariadb,
    Mongo,
    Redis,
    Volume,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Postgres => "postgres",
            Kind::Mariadb => "mariadb",
            Kind::Mongo => "mongo",
            Kind::Redis => "redis",
            Kind::Volume => "volume",
        }
    }

    /// The file name of a dump of this kind in the repository.
    pub fn extension(self) -> &'static str {
        match self {
            Kind::Postgres => "pgdump",
            Kind::Mariadb => "sql",
            Kind::Mongo => "archive",
            Kind::Redis => "rdb",
            Kind::Volume => "tar",
        }
    }

    /// The kind of a provider module (`module-name`).
    pub fn of_module(module: &str) -> Option<Kind> {
        match module {
            "postgres" => Some(Kind::Postgres),
            "mariadb" | "mysql" => Some(Kind::Mariadb),
            "mongo" | "mongodb" => Some(Kind::Mongo),
            "redis-cache" | "redis" => Some(Kind::Redis),
            _ => None,
        }
    }

    /// The kind a `[backup] method` of the original names.
    pub fn of_method(method: &str) -> Option<Kind> {
        match method {
            "pg_dump" | "pg_dumpall" | "postgres" => Some(Kind::Postgres),
            "mysqldump" | "mariadb-dump" | "mariadb_dump" | "mariadb" => Some(Kind::Mariadb),
            "mongodump" | "mongo" => Some(Kind::Mongo),
            "redis" | "rdb" | "redis_rdb" => Some(Kind::Redis),
            "tgz_volumes" | "tar_volumes" | "tar" | "tgz" | "volumes" => Some(Kind::Volume),
            _ => None,
        }
    }
}

/// Every `[backup] method` Nua knows, for the error naming one it does not.
pub const METHODS: &[&str] = &[
    "pg_dump",
    "pg_dumpall",
    "mysqldump",
    "mariadb-dump",
    "mongodump",
    "redis",
    "tgz_volumes",
    "tar",
];

/// An argv: `sh -c SCRIPT nua ARGS…` (`$1`… in the script).
pub fn sh(script: &str, args: &[&str]) -> Vec<String> {
    let mut argv = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        format!("{SWARM_SECRETS}{script}"),
        "nua".to_owned(),
    ];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    argv
}

/// A task of a Swarm service keeps its secret variables in files (`apply::Services`): a
/// database image's own as `KEY_FILE`, the others in `/run/secrets/nua-env`. A command run
/// in it sees them as a container of this server's engine has them, in its environment.
const SWARM_SECRETS: &str = r#"if [ -r /run/secrets/nua-env ]; then . /run/secrets/nua-env; fi
for v in POSTGRES_USER POSTGRES_DB MARIADB_ROOT_PASSWORD MARIADB_DATABASE MYSQL_ROOT_PASSWORD MYSQL_DATABASE; do
  eval "f=\${${v}_FILE:-}"
  if [ -n "$f" ] && [ -r "$f" ]; then eval "$v=\$(cat \"\$f\")"; export "$v"; fi
done
"#;

/// PostgreSQL's user and database as the official image's contract names them.
const PG_ENV: &str = r#"export PGUSER="${POSTGRES_USER:-postgres}"
export PGDATABASE="${POSTGRES_DB:-$PGUSER}"
unset PGPASSWORD
"#;

/// Each user table and its row count, one JSON array per line: `["schema.table", n]`.
const PG_COUNTS: &str = r"SELECT format('SELECT json_build_array(%L, count(*)) FROM %I.%I',
    n.nspname || '.' || c.relname, n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_toast%'
 ORDER BY 1 \gexec
";

/// The dump of a PostgreSQL provider: `pg_dump -Fc` of the instance's database on standard
/// output, taken in a snapshot that psql holds open while it counts each table's rows in that
/// same snapshot (into `$1/counts`, read with [`read_and_clear`]).
pub fn postgres_dump() -> String {
    format!(
        r#"set -eu
{PG_ENV}work=$1
mkdir -m 700 "$work"
cd "$work"
psql -X -q -A -t -v ON_ERROR_STOP=1 <<'SQL'
BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;
\o snapshot
SELECT pg_export_snapshot();
\o counts
{PG_COUNTS}\o
\! pg_dump --format=custom --compress=0 --no-password --snapshot="$(cat snapshot)"; echo $? >status
COMMIT;
SQL
status=$(cat status 2>/dev/null || echo 1)
exit "$status"
"#
    )
}

/// What a dump left in the container (`$1/counts`), printed, and the folder removed.
pub fn read_and_clear() -> String {
    r#"set -eu
cat "$1/counts" 2>/dev/null || true
rm -rf "$1""#
        .to_owned()
}

/// The row count of each table of the instance's database, now.
pub fn postgres_counts() -> String {
    format!("set -eu\n{PG_ENV}psql -X -q -A -t -v ON_ERROR_STOP=1 <<'SQL'\n{PG_COUNTS}SQL\n")
}

/// Load a dump (standard input) into an empty database of a scratch server, in one
/// transaction.
pub fn postgres_load_scratch() -> String {
    format!(
        "set -eu\n{PG_ENV}exec pg_restore --no-password --exit-on-error --single-transaction \
         --no-owner --dbname=\"$PGDATABASE\"\n"
    )
}

/// Replace the instance's database with a dump (standard input): loaded into a new database
/// in one transaction first, then swapped in by two renames; the one it replaces is dropped
/// only once the new one holds its name. A load that fails leaves the database as it was.
pub fn postgres_restore() -> String {
    format!(
        r#"set -eu
{PG_ENV}db=$PGDATABASE
export PGDATABASE=postgres
sql() {{ psql -X -q -A -t -v ON_ERROR_STOP=1 -v db="$db" -v new="$db.nua-restore" -v old="$db.nua-before"; }}
printf '%s\n' 'DROP DATABASE IF EXISTS :"new";' 'DROP DATABASE IF EXISTS :"old";' \
  'SELECT format($$CREATE DATABASE %I OWNER %I$$, :'"'"'new'"'"', pg_get_userbyid(datdba)) FROM pg_database WHERE datname = :'"'"'db'"'"' \gexec' | sql
pg_restore --no-password --exit-on-error --single-transaction --dbname="$db.nua-restore" || {{
  printf '%s\n' 'DROP DATABASE IF EXISTS :"new";' | sql
  exit 1
}}
printf '%s\n' \
  'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :'"'"'db'"'"' AND pid <> pg_backend_pid();' \
  'ALTER DATABASE :"db" RENAME TO :"old";' \
  'ALTER DATABASE :"new" RENAME TO :"db";' \
  'DROP DATABASE :"old";' | sql >/dev/null
"#
    )
}

/// MariaDB's root password and the instance's database, from the official image's contract;
/// the password reaches the client through `MYSQL_PWD`, never an argument.
const MARIADB_ENV: &str = r#"MYSQL_PWD="${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}"
export MYSQL_PWD
db="${MARIADB_DATABASE:-${MYSQL_DATABASE:-}}"
if [ -z "$db" ]; then echo "the container names no database (MARIADB_DATABASE)" >&2; exit 2; fi
client=mariadb; command -v mariadb >/dev/null || client=mysql
dump=mariadb-dump; command -v mariadb-dump >/dev/null || dump=mysqldump
"#;

/// The dump of a MariaDB provider: the instance's database in one consistent snapshot
/// (`--single-transaction`), with its routines and events, as SQL on standard output. The row
/// counts are read from the dump itself ([`super::verify::SqlRows`]).
pub fn mariadb_dump() -> String {
    format!(
        "set -eu\n{MARIADB_ENV}exec \"$dump\" --user=root --single-transaction --routines \
         --events --triggers --hex-blob \"$db\"\n"
    )
}

/// The row count of each table of the instance's database, now: `["table", n]` per line.
pub fn mariadb_counts() -> String {
    format!(
        r#"set -eu
{MARIADB_ENV}"$client" --user=root --batch --skip-column-names "$db" -e "SELECT CONCAT('SELECT JSON_ARRAY(', QUOTE(table_name), ', COUNT(*)) FROM \`', REPLACE(table_name, '\`', '\`\`'), '\`;') FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY table_name" >"/tmp/nua-counts.$$"
"$client" --user=root --batch --skip-column-names "$db" <"/tmp/nua-counts.$$"
rm -f "/tmp/nua-counts.$$"
"#
    )
}

/// Load a dump (standard input) into the instance's database: emptied (dropped and made
/// again; MariaDB cannot do it in a transaction), then loaded.
pub fn mariadb_restore() -> String {
    format!(
        r#"set -eu
{MARIADB_ENV}quoted=$(printf '%s' "$db" | sed 's/`/``/g')
"$client" --user=root -e "DROP DATABASE IF EXISTS \`$quoted\`; CREATE DATABASE \`$quoted\`"
exec "$client" --user=root "$db"
"#
    )
}

/// The dump of a MongoDB provider: `mongodump --archive` of every database on standard
/// output (root credentials from the official image's contract, through a config file so
/// they are not arguments).
pub fn mongo_dump() -> String {
    r#"set -eu
conf=$(mktemp)
trap 'rm -f "$conf"' EXIT
if [ -n "${MONGO_INITDB_ROOT_USERNAME:-}" ]; then
  printf 'password: "%s"\n' "$MONGO_INITDB_ROOT_PASSWORD" >"$conf"
  mongodump --quiet --archive --username "$MONGO_INITDB_ROOT_USERNAME" \
    --authenticationDatabase admin --config "$conf"
else
  mongodump --quiet --archive
fi"#
    .to_owned()
}

/// Load a `mongodump --archive` (standard input), replacing the collections it holds.
pub fn mongo_restore() -> String {
    r#"set -eu
conf=$(mktemp)
trap 'rm -f "$conf"' EXIT
if [ -n "${MONGO_INITDB_ROOT_USERNAME:-}" ]; then
  printf 'password: "%s"\n' "$MONGO_INITDB_ROOT_PASSWORD" >"$conf"
  mongorestore --quiet --archive --drop --username "$MONGO_INITDB_ROOT_USERNAME" \
    --authenticationDatabase admin --config "$conf"
else
  mongorestore --quiet --archive --drop
fi"#
    .to_owned()
}

/// The dump of a Redis provider: `BGSAVE`, waited for until it completed (a save that
/// failed is an error), then the RDB file on standard output.
pub fn redis_dump() -> String {
    r#"set -eu
cli() { redis-cli --no-auth-warning ${REDIS_PASSWORD:+-a "$REDIS_PASSWORD"} "$@"; }
before=$(cli LASTSAVE)
reply=$(cli BGSAVE)
case "$reply" in
  *"Background saving started"*|*"already in progress"*) ;;
  *) echo "BGSAVE: $reply" >&2; exit 1 ;;
esac
while :; do
  info=$(cli INFO persistence | tr -d '\r')
  case "$info" in *"rdb_bgsave_in_progress:0"*)
    if [ "$(cli LASTSAVE)" != "$before" ]; then break; fi ;;
  esac
  sleep 0.1
done
case "$info" in *"rdb_last_bgsave_status:ok"*) ;; *) echo "BGSAVE failed" >&2; exit 1 ;; esac
dir=$(cli CONFIG GET dir | sed -n 2p)
file=$(cli CONFIG GET dbfilename | sed -n 2p)
exec cat "$dir/$file""#
        .to_owned()
}

/// How many keys an RDB file (standard input) holds, read by `redis-check-rdb`.
pub fn redis_rdb_keys() -> String {
    r#"set -eu
f=$(mktemp)
trap 'rm -f "$f"' EXIT
cat >"$f"
redis-check-rdb "$f" | tr -d '\r' | sed -n 's/.*\[info\] \([0-9]*\) keys read.*/\1/p' | tail -n 1"#
        .to_owned()
}

/// Put an RDB (standard input) where the server loads it from, with the append-only file
/// off (it would be loaded instead). The server must then stop without saving
/// ([`redis_shutdown`]): it loads the file when Docker starts it again.
pub fn redis_restore() -> String {
    r#"set -eu
cli() { redis-cli --no-auth-warning ${REDIS_PASSWORD:+-a "$REDIS_PASSWORD"} "$@"; }
dir=$(cli CONFIG GET dir | sed -n 2p)
file=$(cli CONFIG GET dbfilename | sed -n 2p)
cat >"$dir/.nua-restore.rdb"
cli CONFIG SET appendonly no >/dev/null
mv "$dir/.nua-restore.rdb" "$dir/$file""#
        .to_owned()
}

/// Stop a Redis server without saving (the container ends with it).
pub fn redis_shutdown() -> String {
    r#"redis-cli --no-auth-warning ${REDIS_PASSWORD:+-a "$REDIS_PASSWORD"} SHUTDOWN NOSAVE"#
        .to_owned()
}

/// A volume mounted at `$1`, as a tar stream on standard output (numeric owners, modes,
/// symlinks as links).
pub fn volume_dump() -> String {
    r#"set -eu
cd "$1"
exec tar --numeric-owner --one-file-system -cpf - ."#
        .to_owned()
}

/// Empty the volume mounted at `$1` and fill it from a tar stream (standard input).
pub fn volume_restore() -> String {
    r#"set -eu
cd "$1"
find . -mindepth 1 -maxdepth 1 -exec rm -rf {} +
exec tar --numeric-owner --same-owner -xpf -"#
        .to_owned()
}

/// Table → row count, parsed from the `["table", n]` lines of the count scripts.
pub fn parse_counts(text: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut counts = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (table, rows): (String, u64) = serde_json::from_str(line)
            .map_err(|_| format!("`{line}` is not a table and its row count"))?;
        counts.insert(table, rows);
    }
    Ok(counts)
}
