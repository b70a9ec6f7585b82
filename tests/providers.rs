//! Nua's own provider images (issue 14): `postgres-15`, `redis-7` and `mariadb-10.11` built
//! from Debian packages, run on the real Docker Engine with the environment contract of the
//! official images (secrets from mounted `_FILE`s included), reached from another container
//! on a user network with the image's own client, stopped with `docker stop` and started
//! again with their data; reproducible from two empty caches, with no private key and no data
//! directory in any layer.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use common::docker::{exec, inspect, load, wait_healthy};
use common::*;
use serde_json::Value;

/// `nua-pack base build NAME --json -t TAG --output FILE` in `cache`.
fn build(name: &str, cache: &Path, tag: &str, output: &Path) -> Value {
    let stdout = run_ok(
        nua_pack()
            .args(["base", "build", name, "--json", "-t", tag, "--output"])
            .arg(output)
            .env("NUA_CACHE_DIR", cache),
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("base build --json printed no JSON ({e}):\n{stdout}"))
}

/// The tarball of provider `name` built in the shared cache, once per test binary (kept
/// beside that cache, replaced by the next run), and the tag it loads as.
fn tarball(name: &str) -> (PathBuf, String) {
    static BUILT: OnceLock<Mutex<BTreeMap<String, PathBuf>>> = OnceLock::new();
    let tag = format!("nua-test-{name}:providers");
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    let path = built
        .entry(name.to_owned())
        .or_insert_with(|| {
            let cache = shared_cache();
            let dir = cache.parent().unwrap().join("providers");
            std::fs::create_dir_all(&dir).unwrap();
            let output = dir.join(format!("{name}.tar"));
            let result = build(name, &cache, &tag, &output);
            assert_eq!(result["locked"], true, "{name} is built from its lock");
            output
        })
        .clone();
    (path, tag)
}

/// Provider `name` loaded into Docker under a tag of this test (`test`), removed when
/// dropped: tests running at once each have their own.
fn image(name: &str, test: &str) -> LoadedImage {
    static LOADING: Mutex<()> = Mutex::new(());
    let (tarball, tag) = tarball(name);
    let _one_at_a_time = LOADING.lock().unwrap_or_else(|e| e.into_inner());
    let loaded = load(&tarball, &tag);
    let mine = format!("nua-test-{name}:{test}-{}", std::process::id());
    run_ok(Command::new("docker").args(["tag", &tag, &mine]));
    drop(loaded);
    LoadedImage(mine)
}

/// A user-defined network, removed when dropped.
struct Network(String);

impl Network {
    fn new(what: &str) -> Network {
        let name = format!("nua-test-{what}-{}", std::process::id());
        run_ok(Command::new("docker").args(["network", "create", &name]));
        Network(name)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["network", "rm", &self.0])
            .output();
    }
}

/// A server container, removed with its anonymous volumes when dropped (the images
/// declare `VOLUME`s).
struct Server(Container);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &(self.0).0])
            .output();
    }
}

/// Start a server of `image` on `network` named `name`, with `args` before the image.
fn start(image: &str, name: &str, network: &Network, args: &[&str]) -> Server {
    let mut cmd = Command::new("docker");
    cmd.args(["run", "-d", "--name", name, "--network", &network.0]);
    cmd.args(args).arg(image);
    run_ok(&mut cmd);
    Server(Container(name.to_owned()))
}

/// Run `client` (a command of the image) in another container of `image` on `network`.
fn client(image: &str, network: &Network, env: &[&str], client: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("docker");
    cmd.args(["run", "--rm", "--network", &network.0]);
    for e in env {
        cmd.args(["-e", e]);
    }
    cmd.arg(image).args(client);
    run(&mut cmd)
}

#[track_caller]
fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn logs(server: &Server) -> String {
    let out = run(Command::new("docker").args(["logs", &(server.0).0]));
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// A secret in a file of `dir` others may read (as Swarm mounts them), and the `docker run
/// -v` that mounts it at `/run/secrets/NAME`.
fn secret_mount(dir: &Path, name: &str, value: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("{value}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    format!("{}:/run/secrets/{name}:ro", path.display())
}

/// `docker stop` (the image's stop signal), then `docker start`, and healthy again.
fn restart(server: &Server) {
    run_ok(Command::new("docker").args(["stop", &(server.0).0]));
    let code = inspect(&(server.0).0, "{{.State.ExitCode}}");
    assert_eq!(code.trim(), "0", "a clean stop exits 0: {}", logs(server));
    run_ok(Command::new("docker").args(["start", &(server.0).0]));
    wait_healthy(&server.0);
}

/// The server runs (as PID 1) as the database's own user, not root.
fn assert_runs_as(server: &Server, user: &str) {
    let uid = exec(&server.0, &format!("id -u {user}"));
    let status = exec(&server.0, "grep ^Uid: /proc/1/status");
    assert_ne!(uid.trim(), "0");
    assert!(
        status.split_whitespace().skip(1).all(|u| u == uid.trim()),
        "PID 1 runs as {user} ({uid}): {status}"
    );
}

#[test]
fn postgres_keeps_a_table_across_a_restart() {
    let image = image("postgres-15", "restart");
    let tag = image.0.clone();
    let work = temp_dir();
    let password = "p@ss w0rd'\"$x";
    let network = Network::new("pg");
    let name = format!("nua-test-pg-{}", std::process::id());
    let mount = secret_mount(work.path(), "pg_password", password);
    let server = start(
        &tag,
        &name,
        &network,
        &[
            "-e",
            "POSTGRES_USER=app",
            "-e",
            "POSTGRES_DB=appdb",
            "-e",
            "POSTGRES_PASSWORD_FILE=/run/secrets/pg_password",
            "-v",
            &mount,
        ],
    );
    wait_healthy(&server.0);
    assert_runs_as(&server, "postgres");
    let pgpassword = format!("PGPASSWORD={password}");
    let psql = |sql: &str| {
        client(
            &tag,
            &network,
            &[&pgpassword],
            &[
                "psql",
                "-h",
                &name,
                "-U",
                "app",
                "-d",
                "appdb",
                "-v",
                "ON_ERROR_STOP=1",
                "-tAc",
                sql,
            ],
        )
    };
    ok(psql(
        "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('across a restart')",
    ));
    // Other hosts must give the password.
    let wrong = client(
        &tag,
        &network,
        &["PGPASSWORD=wrong"],
        &[
            "psql", "-h", &name, "-U", "app", "-d", "appdb", "-c", "SELECT 1",
        ],
    );
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("password authentication failed"),
        "{wrong:?}"
    );

    restart(&server);
    assert_eq!(ok(psql("SELECT v FROM kept")).trim(), "across a restart");
    let log = logs(&server);
    assert_eq!(log.matches("initializing the database").count(), 1, "{log}");
    assert!(log.contains("database system is shut down"), "{log}");
    assert!(
        !log.contains("not properly shut down") && !log.contains("automatic recovery"),
        "the stop was not clean: {log}"
    );
    assert!(!log.contains(password), "the password is in the log");
    // The tools of backups are there.
    let dump = ok(client(
        &tag,
        &network,
        &[&pgpassword],
        &[
            "pg_dump", "-h", &name, "-U", "app", "-d", "appdb", "-t", "kept",
        ],
    ));
    assert!(dump.contains("CREATE TABLE public.kept"), "{dump}");
    exec(&server.0, "command -v pg_restore");
}

#[test]
fn postgres_without_a_password_says_which_variables() {
    let image = image("postgres-15", "no-password");
    let tag = image.0.clone();
    let out = run(Command::new("docker").args(["run", "--rm", &tag]));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("POSTGRES_PASSWORD") && stderr.contains("POSTGRES_HOST_AUTH_METHOD"),
        "{stderr}"
    );
}

#[test]
fn redis_keeps_a_key_across_a_restart() {
    let image = image("redis-7", "restart");
    let tag = image.0.clone();
    let network = Network::new("redis");
    let name = format!("nua-test-redis-{}", std::process::id());
    let password = "p@ss w0rd'\"$x";
    // The official image's command line: options alone are redis-server's. No config file,
    // so redis-server's built-in save points hold and it writes /data/dump.rdb when it
    // stops on SIGTERM: what `docker stop` keeps is what the restart reads back.
    let mut cmd = Command::new("docker");
    cmd.args(["run", "-d", "--name", &name, "--network", &network.0, &tag]);
    cmd.args(["--requirepass", password]);
    run_ok(&mut cmd);
    let server = Server(Container(name.clone()));
    wait_healthy(&server.0);
    assert_runs_as(&server, "redis");
    let auth = format!("REDISCLI_AUTH={password}");
    let cli = |args: &[&str]| {
        let mut all = vec!["redis-cli", "-h", &name];
        all.extend_from_slice(args);
        ok(client(&tag, &network, &[&auth], &all))
    };
    assert_eq!(cli(&["SET", "kept", "across a restart"]).trim(), "OK");
    // Other hosts must give the password (not refused by protected mode either).
    let anonymous = ok(client(
        &tag,
        &network,
        &[],
        &["redis-cli", "-h", &name, "GET", "kept"],
    ));
    assert!(anonymous.contains("NOAUTH"), "{anonymous}");

    restart(&server);
    assert_eq!(cli(&["GET", "kept"]).trim(), "across a restart");
    let log = logs(&server);
    assert!(log.contains("DB saved on disk"), "{log}");
    assert!(log.contains("keys loaded: 1"), "{log}");
    let files = exec(&server.0, "ls -ln /data");
    assert!(files.contains("dump.rdb"), "{files}");
    // The tool of backups is there: an RDB snapshot over the network.
    let backup = format!("redis-cli -h {name} --rdb /tmp/b.rdb >&2 && head -c 5 /tmp/b.rdb");
    let rdb = ok(client(&tag, &network, &[&auth], &["sh", "-c", &backup]));
    assert_eq!(rdb, "REDIS", "an RDB file starts with its magic");
    assert!(!log.contains(password), "the password is in the log");
}

#[test]
fn redis_takes_a_config_file_as_its_command() {
    let image = image("redis-7", "config");
    let tag = image.0.clone();
    let name = format!("nua-test-redis-conf-{}", std::process::id());
    // `docker run IMAGE /path/redis.conf` is `redis-server /path/redis.conf`.
    let script = "printf 'port 6380\\n' >/tmp/r.conf && exec docker-entrypoint.sh /tmp/r.conf";
    let mut cmd = Command::new("docker");
    cmd.args([
        "run",
        "-d",
        "--name",
        &name,
        "--entrypoint",
        "sh",
        &tag,
        "-c",
        script,
    ]);
    run_ok(&mut cmd);
    let server = Server(Container(name));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let pong = loop {
        let out = run(Command::new("docker").args([
            "exec",
            &(server.0).0,
            "redis-cli",
            "-p",
            "6380",
            "ping",
        ]));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("PONG") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert!(
        pong.contains("PONG"),
        "no answer on 6380: {}",
        logs(&server)
    );
    assert_runs_as(&server, "redis");
}

/// Wait until `sql` succeeds as `user` (`password`) through the `mariadb` client of another
/// container, and return its output: healthy means the server answers, not that the user
/// exists (30 s at most).
fn mariadb(
    tag: &str,
    network: &Network,
    host: &str,
    user: &str,
    password: &str,
    database: &str,
    sql: &str,
) -> std::process::Output {
    let pwd = format!("MYSQL_PWD={password}");
    client(
        tag,
        network,
        &[&pwd],
        &[
            "mariadb", "-h", host, "-u", user, "-D", database, "-N", "-B", "-e", sql,
        ],
    )
}

#[test]
fn mariadb_keeps_a_table_across_a_restart() {
    let image = image("mariadb-10.11", "restart");
    let tag = image.0.clone();
    let work = temp_dir();
    let root_password = "r00t p@ss'\"$x\\";
    let password = "app p@ss'\"`y";
    let network = Network::new("mariadb");
    let name = format!("nua-test-mariadb-{}", std::process::id());
    let mount = secret_mount(work.path(), "root_password", root_password);
    let app_password = format!("MARIADB_PASSWORD={password}");
    let server = start(
        &tag,
        &name,
        &network,
        &[
            "-e",
            "MARIADB_ROOT_PASSWORD_FILE=/run/secrets/root_password",
            "-e",
            "MARIADB_USER=app",
            "-e",
            &app_password,
            "-e",
            "MARIADB_DATABASE=appdb",
            "-v",
            &mount,
        ],
    );
    wait_healthy(&server.0);
    assert_runs_as(&server, "mysql");
    let sql = |sql: &str| mariadb(&tag, &network, &name, "app", password, "appdb", sql);
    ok(sql(
        "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('across a restart')",
    ));
    let wrong = mariadb(&tag, &network, &name, "app", "wrong", "appdb", "SELECT 1");
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("Access denied"),
        "{wrong:?}"
    );
    // Root from another host with the password of the file.
    let grants = ok(mariadb(
        &tag,
        &network,
        &name,
        "root",
        root_password,
        "mysql",
        "SELECT COUNT(*) FROM user WHERE User = 'root' AND Host = '%'",
    ));
    assert_eq!(grants.trim(), "1");

    restart(&server);
    assert_eq!(ok(sql("SELECT v FROM kept")).trim(), "across a restart");
    let log = logs(&server);
    assert_eq!(log.matches("initializing the database").count(), 1, "{log}");
    assert_eq!(
        log.matches("mariadbd: Shutdown complete").count(),
        2,
        "{log}"
    );
    assert!(
        !log.contains("crash recovery") && !log.contains("was not shut down normally"),
        "the stop was not clean: {log}"
    );
    assert!(!log.contains(root_password) && !log.contains(password));
    // The tools of backups are there.
    let dump = format!("mariadb-dump -h {name} -u root appdb kept");
    let root_pwd = format!("MYSQL_PWD={root_password}");
    let dump = ok(client(&tag, &network, &[&root_pwd], &["sh", "-c", &dump]));
    assert!(dump.contains("CREATE TABLE `kept`"), "{dump}");
}

#[test]
fn mariadb_takes_the_mysql_aliases() {
    let image = image("mariadb-10.11", "aliases");
    let tag = image.0.clone();
    let work = temp_dir();
    let password = "alias p@ss";
    let network = Network::new("mysql");
    let name = format!("nua-test-mysql-{}", std::process::id());
    let mount = secret_mount(work.path(), "password", password);
    let server = start(
        &tag,
        &name,
        &network,
        &[
            "-e",
            "MYSQL_RANDOM_ROOT_PASSWORD=yes",
            "-e",
            "MYSQL_USER=legacy",
            "-e",
            "MYSQL_PASSWORD_FILE=/run/secrets/password",
            "-e",
            "MYSQL_DATABASE=legacydb",
            "-v",
            &mount,
        ],
    );
    wait_healthy(&server.0);
    let db = ok(mariadb(
        &tag,
        &network,
        &name,
        "legacy",
        password,
        "legacydb",
        "SELECT DATABASE()",
    ));
    assert_eq!(db.trim(), "legacydb");
    // The random root password is nobody's: no empty one, and not in the log.
    let root = mariadb(&tag, &network, &name, "root", "", "mysql", "SELECT 1");
    assert!(!root.status.success(), "{root:?}");
    assert!(logs(&server).contains("the root password is random and not shown"));
}

#[test]
fn mariadb_without_a_root_password_says_which_variables() {
    let image = image("mariadb-10.11", "no-password");
    let out = run(Command::new("docker").args(["run", "--rm", &image.0]));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("MARIADB_ROOT_PASSWORD")
            && stderr.contains("MARIADB_RANDOM_ROOT_PASSWORD")
            && stderr.contains("MARIADB_ALLOW_EMPTY_ROOT_PASSWORD"),
        "{stderr}"
    );
}

/// Every file of every layer of an image tarball: its path, and whether it holds a PEM
/// private key.
fn layer_files(tarball: &Path) -> Vec<(String, bool)> {
    let mut files = Vec::new();
    let mut outer = tar::Archive::new(std::fs::File::open(tarball).unwrap());
    for entry in outer.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut blob = Vec::new();
        entry.read_to_end(&mut blob).unwrap();
        if !blob.starts_with(&[0x1f, 0x8b]) {
            continue;
        }
        let mut layer = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
        for file in layer.entries().unwrap() {
            let mut file = file.unwrap();
            let path = file.path().unwrap().to_string_lossy().into_owned();
            let mut content = Vec::new();
            file.read_to_end(&mut content).unwrap();
            let key = holds_private_key(&content);
            files.push((path, key));
        }
    }
    files
}

/// A PEM private key: its header line followed by a key's base64 (a library that parses
/// PEM holds the header alone, as a string constant). Compiled code is left out: GnuTLS
/// carries the public test vectors of its self-tests as PEM keys, the same in every copy.
fn holds_private_key(content: &[u8]) -> bool {
    if content.starts_with(b"\x7fELF") {
        return false;
    }
    let header = b"PRIVATE KEY-----\n";
    content.windows(header.len()).enumerate().any(|(i, w)| {
        let body = &content[i + header.len()..];
        w == header
            && (body.starts_with(b"Proc-Type:")
                || body.len() >= 64
                    && body[..64]
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/'))
    })
}

/// The provider images with, for each, the folders that must hold nothing in any layer (the
/// folder itself may be there, empty).
const PROVIDERS: [(&str, &[&str]); 3] = [
    (
        "postgres-15",
        &["var/lib/postgresql/15/main/", "var/lib/postgresql/data/"],
    ),
    ("mariadb-10.11", &["var/lib/mysql/"]),
    ("redis-7", &["data/", "var/lib/redis/"]),
];

/// Files only a database's data directory holds, wherever they are.
const DATA_FILES: [&str; 5] = [
    "PG_VERSION",
    "ibdata1",
    "aria_log_control",
    "dump.rdb",
    "appendonly.aof",
];

/// Build every provider in each of two empty caches, the two caches at once and the images
/// of one cache one after another (so Debian's base is bootstrapped once per cache, not once
/// per image): the same digest from both for each; then no private key and no data directory
/// in any layer of any of them.
#[test]
fn providers_are_reproducible_with_no_key_and_no_data() {
    test_env();
    let work = temp_dir();
    let sides: Vec<Vec<(Value, PathBuf)>> = ["a", "b"]
        .map(|side| {
            let dir = work.path().to_path_buf();
            std::thread::spawn(move || {
                let cache = dir.join(format!("cache-{side}"));
                PROVIDERS.map(|(name, _)| {
                    let output = dir.join(format!("{name}-{side}.tar"));
                    let tag = format!("nua-test-{name}-repro:{}", std::process::id());
                    let started = std::time::Instant::now();
                    let result = build(name, &cache, &tag, &output);
                    let size = &result["size"];
                    eprintln!("{name} ({side}): {:.0?}, {size} bytes", started.elapsed());
                    (result, output)
                })
            })
        })
        .into_iter()
        .map(|t| t.join().unwrap().into())
        .collect();
    // The first build of each cache made every layer: the caches were empty.
    for side in &sides {
        let layers = side[0].0["layers"].as_array().unwrap();
        assert!(layers.iter().all(|l| l["cached"] == false), "{layers:?}");
    }
    for (i, (name, data)) in PROVIDERS.iter().enumerate() {
        let ((a, tarball), (b, _)) = (&sides[0][i], &sides[1][i]);
        assert_eq!(
            a["manifest_digest"], b["manifest_digest"],
            "{name} from two empty caches"
        );
        assert_secret_free(name, tarball, data);
    }
}

/// No private key, no snakeoil certificate, nothing in the `data` folders and no file of a
/// data directory in any layer of `tarball`.
fn assert_secret_free(name: &str, tarball: &Path, data: &[&str]) {
    let files = layer_files(tarball);
    assert!(files.len() > 1000, "{name}: {} files", files.len());
    let keys: Vec<&String> = files.iter().filter(|(_, k)| *k).map(|(p, _)| p).collect();
    assert!(keys.is_empty(), "private keys in {name}: {keys:?}");
    let found: Vec<&String> = files
        .iter()
        .map(|(p, _)| p)
        .filter(|p| {
            let p = p.trim_start_matches("./");
            let file = p.rsplit('/').next().unwrap_or(p);
            p.contains("snakeoil")
                || DATA_FILES.contains(&file)
                || data
                    .iter()
                    .any(|d| p.starts_with(d) && p.trim_end_matches('/') != d.trim_end_matches('/'))
        })
        .collect();
    assert!(found.is_empty(), "data or keys in {name}: {found:?}");
}

#[test]
fn a_private_key_is_told_from_a_pem_parser() {
    let key = b"x\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvuNMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ\n";
    assert!(holds_private_key(key));
    assert!(!holds_private_key(
        b"\0-----BEGIN %s PRIVATE KEY-----\n\0-----END"
    ));
}
