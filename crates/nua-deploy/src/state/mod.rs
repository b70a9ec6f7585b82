//! The orchestrator's state: one SQLite database under the state folder (`NUA_STATE_DIR`;
//! `/var/lib/nua` as root, `$XDG_STATE_HOME/nua` otherwise), created `0700`.
//!
//! It holds, per instance (a label), the desired state of its current generation, and a
//! journal of every generation (deploy, upgrade, remove, rollback): who asked, when, the full
//! desired state, the outcome and its error. A generation is recorded `pending` before
//! anything changes and finished `succeeded` or `failed`; only a success moves the
//! instance to it, so a failed deploy leaves the previous generation as the one to run.
//! Generated secrets are encrypted at rest (see [`secrets`]) with a key kept in a `0600`
//! file beside the database: a copy of the database alone reveals none. Counters give
//! `unique_user`/`unique_db` their numbers.
//!
//! WAL mode, foreign keys, one transaction per change, and a schema version
//! (`PRAGMA user_version`) with migrations; a database made by a newer Nua is refused.

mod backups;
mod schema;
pub mod secrets;

pub use backups::Backup;
#[cfg(test)]
mod tests;

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::Value;

use secrets::Key;

/// The database file in the state folder.
pub const DATABASE: &str = "state.db";
/// The secrets key file beside it.
pub const KEY_FILE: &str = "secrets.key";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the state database `{}` failed", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the state database `{}` has schema version {found}, newer than this nua knows \
         ({known})",
        path.display()
    )]
    Newer {
        path: PathBuf,
        found: u32,
        known: u32,
    },
    #[error("`{}` {problem}", path.display())]
    BadKey { path: PathBuf, problem: String },
    #[error(
        "the secret `{name}` of `{label}` does not decrypt with the key `{}`",
        key.display()
    )]
    Decrypt {
        label: String,
        name: String,
        key: PathBuf,
    },
    #[error("there is no generation {generation} of `{label}`")]
    NoGeneration { label: String, generation: u64 },
}

impl Error {
    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Newer { .. } => Some("use the nua that made it, or a newer one".into()),
            Error::Decrypt { .. } => Some(
                "the key file beside the database must be the one it was written with; \
                 restore it from the backup of the state folder"
                    .into(),
            ),
            Error::BadKey { .. } => Some(format!(
                "the key is {} random bytes readable by its owner only (`chmod 600`)",
                secrets::KEY_LEN
            )),
            _ => None,
        }
    }
}

type Result<T, E = Error> = std::result::Result<T, E>;

/// What a generation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Deploy,
    Upgrade,
    Remove,
    Rollback,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Deploy => "deploy",
            Kind::Upgrade => "upgrade",
            Kind::Remove => "remove",
            Kind::Rollback => "rollback",
        }
    }

    fn parse(text: &str) -> Kind {
        match text {
            "upgrade" => Kind::Upgrade,
            "remove" => Kind::Remove,
            "rollback" => Kind::Rollback,
            _ => Kind::Deploy,
        }
    }
}

/// How a generation ended, if it has.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase", tag = "outcome", content = "error")]
pub enum Outcome {
    /// Recorded, not finished (running, or the process was killed).
    Pending,
    Succeeded,
    Failed(String),
}

/// One entry of the journal.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Generation {
    pub label: String,
    /// 1, 2, … per label.
    pub number: u64,
    pub kind: Kind,
    /// Who asked (`user@host`, `nua server`).
    pub actor: String,
    /// Seconds since the epoch.
    pub started: u64,
    pub finished: Option<u64>,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The full desired state of the instance at this generation.
    pub desired: Value,
}

/// An instance: its current generation and what it should run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Instance {
    pub label: String,
    /// The last generation that succeeded.
    pub generation: u64,
    pub desired: Value,
    /// Stopped on purpose (`nua stop`): reconciling keeps it stopped.
    pub stopped: bool,
}

/// The state of one server.
pub struct State {
    conn: Connection,
    key: Key,
    path: PathBuf,
    key_path: PathBuf,
}

/// The state folder: `NUA_STATE_DIR`, else `/var/lib/nua` as root, else
/// `$XDG_STATE_HOME/nua` (`~/.local/state/nua`).
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NUA_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    // SAFETY: getuid cannot fail.
    if unsafe { libc::getuid() } == 0 {
        return PathBuf::from("/var/lib/nua");
    }
    match std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("nua"),
        None => {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".local/state/nua")
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl State {
    /// Open (creating when needed) the state of folder `dir`.
    pub fn open(dir: &Path) -> Result<State> {
        if !dir.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| Error::Io {
                    action: "create the state folder",
                    path: dir.to_path_buf(),
                    source,
                })?;
            // `recursive` applies the mode to the last folder subject to the umask.
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let key_path = dir.join(KEY_FILE);
        let key = Key::load_or_create(&key_path)?;
        let path = dir.join(DATABASE);
        let sqlite = |source| Error::Sqlite {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(sqlite)?;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(sqlite)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sqlite)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sqlite)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sqlite)?;
        schema::migrate(&mut conn, &path)?;
        Ok(State {
            conn,
            key,
            path,
            key_path,
        })
    }

    fn sqlite(&self) -> impl Fn(rusqlite::Error) -> Error {
        sqlite_error(&self.path)
    }

    /// Record a new generation of `label`, pending; returns its number.
    pub fn begin(&mut self, label: &str, kind: Kind, actor: &str, desired: &Value) -> Result<u64> {
        let sqlite = sqlite_error(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&sqlite)?;
        let last: Option<u64> = tx
            .query_row(
                "SELECT MAX(number) FROM generations WHERE label = ?1",
                params![label],
                |row| row.get(0),
            )
            .map_err(&sqlite)?;
        let number = last.unwrap_or(0) + 1;
        // A generation still pending was left by a process that stopped before finishing it
        // (killed, a crash): this one takes over, and the journal says so.
        tx.execute(
            "UPDATE generations SET outcome = 'failed', finished = ?2,
             error = 'interrupted: the process stopped before it finished'
             WHERE label = ?1 AND outcome = 'pending'",
            params![label, now()],
        )
        .map_err(&sqlite)?;
        tx.execute(
            "INSERT INTO generations (label, number, kind, actor, started, outcome, desired)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6)",
            params![
                label,
                number,
                kind.as_str(),
                actor,
                now(),
                desired.to_string()
            ],
        )
        .map_err(&sqlite)?;
        tx.commit().map_err(&sqlite)?;
        Ok(number)
    }

    /// Finish generation `number` of `label`. A success makes it the instance's current one
    /// (a `remove` that succeeded removes the instance); a failure changes nothing else.
    pub fn finish(&mut self, label: &str, number: u64, outcome: Result<(), &str>) -> Result<()> {
        let sqlite = sqlite_error(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&sqlite)?;
        let found: Option<(String, String)> = tx
            .query_row(
                "SELECT kind, desired FROM generations WHERE label = ?1 AND number = ?2",
                params![label, number],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(&sqlite)?;
        let Some((kind, desired)) = found else {
            return Err(Error::NoGeneration {
                label: label.to_owned(),
                generation: number,
            });
        };
        let (text, error) = match outcome {
            Ok(()) => ("succeeded", None),
            Err(e) => ("failed", Some(e)),
        };
        tx.execute(
            "UPDATE generations SET outcome = ?3, error = ?4, finished = ?5
             WHERE label = ?1 AND number = ?2",
            params![label, number, text, error, now()],
        )
        .map_err(&sqlite)?;
        if outcome.is_ok() {
            if Kind::parse(&kind) == Kind::Remove {
                tx.execute("DELETE FROM instances WHERE label = ?1", params![label])
                    .map_err(&sqlite)?;
            } else {
                // A deploy, upgrade or rollback runs the instance, stopped or not.
                tx.execute(
                    "INSERT INTO instances (label, generation, desired) VALUES (?1, ?2, ?3)
                     ON CONFLICT (label) DO UPDATE SET generation = ?2, desired = ?3,
                     stopped = 0",
                    params![label, number, desired],
                )
                .map_err(&sqlite)?;
            }
        }
        tx.commit().map_err(&sqlite)
    }

    /// The instance `label`, if it has a generation that succeeded (and was not removed).
    pub fn instance(&self, label: &str) -> Result<Option<Instance>> {
        self.conn
            .query_row(
                "SELECT label, generation, desired, stopped FROM instances WHERE label = ?1",
                params![label],
                instance_of,
            )
            .optional()
            .map_err(self.sqlite())
    }

    /// Every instance, by label.
    pub fn instances(&self) -> Result<Vec<Instance>> {
        let mut statement = self
            .conn
            .prepare("SELECT label, generation, desired, stopped FROM instances ORDER BY label")
            .map_err(self.sqlite())?;
        let rows = statement
            .query_map([], instance_of)
            .map_err(self.sqlite())?;
        rows.collect::<Result<_, _>>().map_err(self.sqlite())
    }

    /// The journal, oldest first: of `label`, or of every instance.
    pub fn history(&self, label: Option<&str>) -> Result<Vec<Generation>> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT label, number, kind, actor, started, finished, outcome, error, desired
                 FROM generations WHERE ?1 IS NULL OR label = ?1 ORDER BY started, label, number",
            )
            .map_err(self.sqlite())?;
        let rows = statement
            .query_map(params![label], |row| {
                let outcome: String = row.get(6)?;
                let error: Option<String> = row.get(7)?;
                let desired: String = row.get(8)?;
                Ok(Generation {
                    label: row.get(0)?,
                    number: row.get(1)?,
                    kind: Kind::parse(&row.get::<_, String>(2)?),
                    actor: row.get(3)?,
                    started: row.get(4)?,
                    finished: row.get(5)?,
                    outcome: match outcome.as_str() {
                        "succeeded" => Outcome::Succeeded,
                        "failed" => Outcome::Failed(error.unwrap_or_default()),
                        _ => Outcome::Pending,
                    },
                    desired: serde_json::from_str(&desired).unwrap_or(Value::Null),
                })
            })
            .map_err(self.sqlite())?;
        rows.collect::<Result<_, _>>().map_err(self.sqlite())
    }

    /// Mark instance `label` stopped on purpose, or not; whether it exists.
    pub fn set_stopped(&mut self, label: &str, stopped: bool) -> Result<bool> {
        let changed = self
            .conn
            .execute(
                "UPDATE instances SET stopped = ?2 WHERE label = ?1",
                params![label, stopped],
            )
            .map_err(self.sqlite())?;
        Ok(changed == 1)
    }

    /// The secret `name` of `label`, decrypted; `None` when there is none.
    pub fn secret(&self, label: &str, name: &str) -> Result<Option<String>> {
        let found: Option<(Vec<u8>, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT nonce, sealed FROM secrets WHERE label = ?1 AND name = ?2",
                params![label, name],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(self.sqlite())?;
        found
            .map(|(nonce, sealed)| {
                self.key
                    .open(&secrets::aad(label, name), &nonce, &sealed)
                    .ok_or_else(|| Error::Decrypt {
                        label: label.to_owned(),
                        name: name.to_owned(),
                        key: self.key_path.clone(),
                    })
            })
            .transpose()
    }

    /// The secret `name` of `label`: the one kept, else `make()`'s, kept (in one
    /// transaction, so two processes agree on one value).
    pub fn secret_or_insert(
        &mut self,
        label: &str,
        name: &str,
        make: impl FnOnce() -> String,
    ) -> Result<String> {
        if let Some(kept) = self.secret(label, name)? {
            return Ok(kept);
        }
        let value = make();
        let (nonce, sealed) = self.key.seal(&secrets::aad(label, name), &value)?;
        let inserted = self
            .conn
            .execute(
                "INSERT INTO secrets (label, name, nonce, sealed) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (label, name) DO NOTHING",
                params![label, name, nonce, sealed],
            )
            .map_err(self.sqlite())?;
        if inserted == 0 {
            // Another process kept one first: that one is the value.
            return Ok(self.secret(label, name)?.unwrap_or(value));
        }
        Ok(value)
    }

    /// Forget every secret of `label`; how many there were.
    pub fn forget_secrets(&mut self, label: &str) -> Result<usize> {
        self.conn
            .execute("DELETE FROM secrets WHERE label = ?1", params![label])
            .map_err(self.sqlite())
    }

    /// The next number of counter `name` (1, 2, …), kept across restarts.
    pub fn next_counter(&mut self, name: &str) -> Result<u64> {
        self.conn
            .query_row(
                "INSERT INTO counters (name, value) VALUES (?1, 1)
                 ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
                params![name],
                |row| row.get(0),
            )
            .map_err(self.sqlite())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// An SQLite error of the database at `path`.
fn sqlite_error(path: &Path) -> impl Fn(rusqlite::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Sqlite {
        path: path.clone(),
        source,
    }
}

fn instance_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<Instance> {
    let desired: String = row.get(2)?;
    Ok(Instance {
        label: row.get(0)?,
        generation: row.get(1)?,
        desired: serde_json::from_str(&desired).unwrap_or(Value::Null),
        stopped: row.get(3)?,
    })
}
