//! `nua backup` and `nua restore` to remote restic repositories, each served for real on
//! 127.0.0.1 by the test: an SFTP one by Debian's OpenSSH server (a separate `sshd` of the
//! test's own, a local user for backups, a fresh key), and an S3 one by moto (installed from
//! PyPI into a virtualenv cached per machine). The PostgreSQL counter is backed up, verified,
//! its table dropped, and restored; with the SFTP server stopped, a backup and a restore
//! each fail with one clear error, and the app keeps running on its data. With the S3
//! server stopped, a backup must not be taken for one to a repository there is none of
//! (fails: see its test).

mod common;

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::backup::*;
use common::deploy::*;
use common::*;
use serde_json::Value;

/// The local user the SFTP repository belongs to.
const BACKUP_USER: &str = "nua-backup";

/// What moto is installed as: any moto 5 serves the S3 calls restic 0.14 makes.
const MOTO: &str = "moto[server]>=5,<6";

/// A port of 127.0.0.1 that nothing listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().unwrap().port()
}

/// Wait until `child` accepts connections on `port`; on timeout, or when it ends first, fail
/// with the end of its log.
fn wait_for_port(child: &mut Child, port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        let ended = child.try_wait().unwrap();
        if ended.is_some() || Instant::now() > deadline {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "{what} does not listen on 127.0.0.1:{port} ({}); the end of its log:\n{}",
                match ended {
                    Some(status) => format!("it ended: {status}"),
                    None => "after 30 s".to_owned(),
                },
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The folder the tests keep what they make once per machine in (as `scripts/test-env.sh`).
fn test_cache() -> PathBuf {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    match var("NUA_TEST_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => var("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(var("HOME").expect("HOME is set")).join(".cache"))
            .join("nua-tests"),
    }
}

/// The uid of the local user for backups, made (its password `*`: no password login, but not
/// a locked account, which OpenSSH refuses even a key for) when there is none.
fn backup_user() -> u32 {
    let exists = |user| run(Command::new("id").arg(user)).status.success();
    if !exists(BACKUP_USER) {
        let out = run(Command::new("useradd").args([
            "--create-home",
            "--shell",
            "/bin/sh",
            "--password",
            "*",
            BACKUP_USER,
        ]));
        // Another test binary may have made it meanwhile.
        assert!(
            out.status.success() || exists(BACKUP_USER),
            "cannot make the user `{BACKUP_USER}` (the tests run as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let shadow = run_ok(Command::new("getent").args(["shadow", BACKUP_USER]));
    if shadow.split(':').nth(1).is_some_and(|p| p.starts_with('!')) {
        run_ok(Command::new("usermod").args(["--password", "*", BACKUP_USER]));
    }
    run_ok(Command::new("id").args(["-u", BACKUP_USER]))
        .trim()
        .parse()
        .unwrap()
}

/// `ssh-keygen` of a fresh ed25519 key without a passphrase at `path` (and `path.pub`).
fn keygen(path: &Path, comment: &str) {
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path),
    );
}

/// Debian's OpenSSH server, run by the test on 127.0.0.1: its own host key, config, pid file
/// and log in `dir`, one authorized key (of [`Sshd::key`]) for every user. Stopped when
/// dropped.
struct Sshd {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Sshd {
    fn start(dir: &Path) -> Sshd {
        // Read by sshd as the user logging in: the folder open to all (nothing in it is a
        // secret of the repository; the host key stays root's, 0600).
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        keygen(&dir.join("host_key"), "nua-test-host");
        keygen(&dir.join("client_key"), "nua-test-backup");
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
        std::fs::set_permissions(
            dir.join("authorized_keys"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        // sshd run as root checks its privilege separation folder, which Debian's service
        // makes when it starts (and the test's sshd is not that service).
        std::fs::create_dir_all("/run/sshd").unwrap();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 Subsystem sftp internal-sftp\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let mut sshd = Sshd {
            child: None,
            port: free_port(),
            dir: dir.to_owned(),
        };
        let mut child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .args(["-p", &sshd.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(sshd.log()).unwrap())
            .spawn()
            .expect("start /usr/sbin/sshd (scripts/test-env.sh installs openssh-server)");
        wait_for_port(&mut child, sshd.port, "sshd", &sshd.log());
        sshd.child = Some(child);
        sshd
    }

    fn log(&self) -> PathBuf {
        self.dir.join("sshd.log")
    }

    fn key(&self) -> PathBuf {
        self.dir.join("client_key")
    }

    /// restic's `sftp.command`: ssh as `user` with the test's key, trusting the test's
    /// host key without remembering it, never asking anything.
    fn command(&self, user: &str) -> String {
        format!(
            "sftp.command=ssh -p {} -i {} -o StrictHostKeyChecking=no -o \
             UserKnownHostsFile=/dev/null -o BatchMode=yes {user}@127.0.0.1 -s sftp",
            self.port,
            self.key().display()
        )
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Every file and folder under `dir`, with its owner's uid.
fn owners(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = std::fs::symlink_metadata(entry.path()).unwrap();
        found.push((entry.path(), meta.uid()));
        if meta.is_dir() {
            found.extend(owners(&entry.path()));
        }
    }
    found
}

/// The files of `folder` of a restic repository at `repository` (its `data` folder fans out
/// into 256 subfolders).
fn repository_files(repository: &Path, folder: &str) -> Vec<PathBuf> {
    owners(&repository.join(folder))
        .into_iter()
        .map(|(path, _)| path)
        .filter(|path| path.is_file())
        .collect()
}

/// Back `label` up with `vars`: the backup, checked verified with `rows` rows in its table.
#[track_caller]
fn verified_backup(env: &Env, label: &str, vars: &[(&str, &str)], rows: u64) -> Value {
    let ran = nua_ran(env, &["backup", label, "--json"], vars);
    assert_eq!(ran.code, Some(0), "{ran:#?}");
    let made: Value = serde_json::from_str(&ran.stdout).unwrap();
    let backup = made[0].clone();
    assert_eq!(backup["status"], "verified", "{made}");
    assert_eq!(backup["reason"], "manual", "{made}");
    let part = &backup["components"][0];
    assert_eq!(part["component"], "database", "{made}");
    assert_eq!(
        part["verified"],
        format!("1 tables, {rows} rows"),
        "measured in the scratch server the dump was restored into: {made}"
    );
    assert!(part["snapshot"].is_string(), "{made}");
    backup
}

/// Drop the counter's table (the app then fails), `nua restore` it from backup `id` with
/// `vars`, and check the rows are back and counted on.
#[track_caller]
fn drop_and_restore(env: &Env, hits: &mut Hits, vars: &[(&str, &str)], id: u64) {
    let label = hits.label.clone();
    psql(&format!("nua-{label}-database"), "DROP TABLE hits");
    let (status, _) = common::docker::http_get(hits.port, "/hit").unwrap();
    assert!(!status.contains("200"), "the table is gone: {status}");
    let ran = nua_ran(env, &["restore", &label], vars);
    assert_eq!(ran.code, Some(0), "{ran:#?}");
    assert!(
        ran.stdout
            .contains(&format!("{label}: restored from backup {id}")),
        "{ran:#?}"
    );
    hits.hit();
    // What was there before (no table) went to the same repository first, verified.
    let listed = backups(env, &label);
    let safety = listed.last().unwrap();
    assert_eq!(safety["reason"], "safety", "{listed:?}");
    assert_eq!(safety["status"], "verified", "{listed:?}");
    assert_eq!(safety["components"][0]["verified"], "0 tables, 0 rows");
    assert_eq!(scratch_left(&label), "", "no scratch container is left");
}

#[test]
fn an_sftp_repository_on_openssh_holds_backups_and_its_outage_fails_them_cleanly() {
    let (work, env) = setup("9400-9433");
    let (label, _deployed) = Deployed::label("br-sftp", &env);
    let uid = backup_user();
    let sshd_dir = work.path().join("sshd");
    std::fs::create_dir(&sshd_dir).unwrap();
    let mut sshd = Sshd::start(&sshd_dir);
    // The repository's folder is the backup user's own, as on a real backup host.
    let home = work.path().join("backup-home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(uid), None).unwrap();
    let repository = home.join("repo");
    let url = format!("sftp:{BACKUP_USER}@127.0.0.1:{}", repository.display());
    let options = sshd.command(BACKUP_USER);
    let password = Password::new(work.path(), "br-sftp");
    let vars = [
        ("NUA_BACKUP_REPOSITORY", url.as_str()),
        ("NUA_BACKUP_OPTIONS", options.as_str()),
        ("NUA_BACKUP_PASSWORD_FILE", password.path()),
    ];
    let mut hits = deploy_counter(work.path(), &env, &label, 3);

    let backup = verified_backup(&env, &label, &vars, 3);
    let id = backup["id"].as_u64().unwrap();
    // It went through the test's sshd, as the backup user, into that user's folder.
    let log = std::fs::read_to_string(sshd.log()).unwrap();
    assert!(
        log.contains(&format!(
            "Accepted publickey for {BACKUP_USER} from 127.0.0.1"
        )),
        "{log}"
    );
    assert!(repository.join("config").is_file(), "{url}");
    assert_eq!(repository_files(&repository, "keys").len(), 1);
    assert!(!repository_files(&repository, "data").is_empty());
    assert!(!repository_files(&repository, "index").is_empty());
    let wrong: Vec<_> = owners(&repository)
        .into_iter()
        .filter(|(_, owner)| *owner != uid)
        .collect();
    assert!(wrong.is_empty(), "not the backup user's ({uid}): {wrong:?}");
    assert!(
        !env.state.join("backups").exists(),
        "nothing went to the local repository"
    );
    // Read on the server's side: one snapshot, of that backup's one component.
    let held = snapshots(&repository, &password, &format!("backup={id}"));
    assert_eq!(held.len(), 1, "{held:?}");
    let snapshot = backup["components"][0]["snapshot"].as_str().unwrap();
    assert!(snapshot.starts_with(held[0]["short_id"].as_str().unwrap()));

    drop_and_restore(&env, &mut hits, &vars, id);

    // The SFTP server goes away: a backup fails, and says which repository and why.
    sshd.stop();
    let before = backups(&env, &label);
    let ran = nua_ran(&env, &["backup", &label], &vars);
    assert_eq!(ran.code, Some(1), "{ran:#?}");
    assert!(ran.stderr.starts_with("error: "), "{ran:#?}");
    assert!(ran.stderr.contains(&format!("`{url}`")), "{ran:#?}");
    // ssh's own reason, as restic passes it on ("subprocess ssh: …"); restic copies ssh's
    // stderr in a thread of its own, and at times ends on its error before that line is
    // copied, leaving its own reason alone.
    let refused = format!(
        "connect to host 127.0.0.1 port {}: Connection refused",
        sshd.port
    );
    assert!(
        ran.stderr.contains(&refused) || ran.stderr.contains("unable to start the sftp session"),
        "ssh's own reason, or restic's: {ran:#?}"
    );
    assert!(
        ran.stderr
            .contains("hint: the repository's server does not answer"),
        "{ran:#?}"
    );
    assert!(!ran.text().contains(&password.text), "{ran:#?}");
    let after = backups(&env, &label);
    let verified = |list: &[Value]| list.iter().filter(|b| b["status"] == "verified").count();
    assert_eq!(verified(&after), verified(&before), "{after:?}");
    hits.hit();
    // A restore fails before it touches anything: the safety backup cannot be taken.
    let ran = nua_ran(
        &env,
        &["restore", &label, "--backup", &id.to_string()],
        &vars,
    );
    assert_eq!(ran.code, Some(1), "{ran:#?}");
    assert!(ran.stderr.contains(&format!("`{url}`")), "{ran:#?}");
    assert!(!ran.text().contains(&password.text), "{ran:#?}");
    hits.hit();
    assert_eq!(scratch_left(&label), "", "no scratch container is left");
}

/// The virtualenv moto runs from, made once per machine under the tests' cache (a lock keeps
/// concurrent test runs from making it twice; one that failed halfway is made again).
fn moto_venv() -> PathBuf {
    let cache = test_cache();
    std::fs::create_dir_all(&cache).unwrap();
    let venv = cache.join("moto-venv");
    let lock = File::create(cache.join("moto-venv.lock")).unwrap();
    // SAFETY: flock on a file descriptor this function owns; released when `lock` drops.
    let locked = unsafe {
        use std::os::fd::AsRawFd;
        libc::flock(lock.as_raw_fd(), libc::LOCK_EX)
    };
    assert_eq!(
        locked,
        0,
        "flock {}",
        cache.join("moto-venv.lock").display()
    );
    let made = venv.join(".nua-complete");
    if made.exists() {
        return venv;
    }
    if venv.exists() {
        std::fs::remove_dir_all(&venv).unwrap();
    }
    eprintln!("installing {MOTO} from PyPI into {} (once)", venv.display());
    let out = run(Command::new("/usr/bin/python3")
        .args(["-m", "venv"])
        .arg(&venv));
    assert!(
        out.status.success(),
        "cannot make the virtualenv {} for moto ({}): {}\nhint: scripts/test-env.sh installs \
         python3-venv",
        venv.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.args([
        "install",
        "--quiet",
        "--retries",
        "2",
        "--timeout",
        "30",
        MOTO,
    ]);
    // pip trusts only its own certificates unless told: a proxy's CA is in the host's bundle.
    let bundle = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if bundle.exists() {
        pip.env("PIP_CERT", bundle);
    }
    let out = run(&mut pip);
    assert!(
        out.status.success(),
        "cannot install `{MOTO}` (the S3 server of this test) from PyPI into {}: pip {}:\n{}\n\
         hint: the first run on a machine needs PyPI (or a proxy of it, `PIP_INDEX_URL`)",
        venv.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    File::create(&made).unwrap();
    venv
}

/// moto's S3 server on 127.0.0.1, in memory; stopped when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start(venv: &Path, log: &Path) -> Moto {
        let port = free_port();
        let mut child = Command::new(venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(File::create(log).unwrap())
            .stderr(File::create(log.with_extension("err")).unwrap())
            .spawn()
            .unwrap();
        wait_for_port(&mut child, port, "moto_server", &log.with_extension("err"));
        Moto { child, port }
    }

    /// The keys of the objects of `bucket` under `prefix`, as S3 lists them.
    fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let (status, body) = common::docker::http_get_host(
            self.port,
            &format!("127.0.0.1:{}", self.port),
            &format!("/{bucket}?list-type=2&prefix={prefix}"),
        )
        .unwrap();
        assert!(status.contains("200"), "{status}\n{body}");
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split_once("</Key>"))
            .map(|(key, _)| key.to_owned())
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_s3_repository_on_moto_holds_backups_that_restore() {
    let venv = moto_venv();
    let (work, env) = setup("9434-9466");
    let (label, _deployed) = Deployed::label("br-s3", &env);
    let moto = Moto::start(&venv, &work.path().join("moto.log"));
    // No bucket yet: restic makes it.
    let url = format!("s3:http://127.0.0.1:{}/nua-br/repo", moto.port);
    let password = Password::new(work.path(), "br-s3");
    let vars = [
        ("NUA_BACKUP_REPOSITORY", url.as_str()),
        ("NUA_BACKUP_PASSWORD_FILE", password.path()),
        ("AWS_ACCESS_KEY_ID", "nua-test-key"),
        ("AWS_SECRET_ACCESS_KEY", "nua-test-secret"),
    ];
    let mut hits = deploy_counter(work.path(), &env, &label, 2);

    let backup = verified_backup(&env, &label, &vars, 2);
    let id = backup["id"].as_u64().unwrap();
    let keys = moto.keys("nua-br", "repo/");
    assert!(keys.iter().any(|k| k == "repo/config"), "{keys:?}");
    for folder in ["keys", "data", "index", "snapshots"] {
        assert!(
            keys.iter()
                .any(|k| k.starts_with(&format!("repo/{folder}/"))),
            "no `{folder}` object: {keys:?}"
        );
    }
    assert!(
        !env.state.join("backups").exists(),
        "nothing went to the local repository"
    );

    drop_and_restore(&env, &mut hits, &vars, id);
    // The safety backup's snapshot is in the bucket too.
    let snapshots = moto.keys("nua-br", "repo/snapshots/");
    assert_eq!(snapshots.len(), 2, "{snapshots:?}");
}

/// restic 0.14 ends every failure to read a repository's `config` with "Is there a
/// repository at the following location?", a server that does not answer too; Nua's
/// `Repository::ensure` takes those words for "there is none" and runs `restic init` on a
/// repository that exists, and its error then names the creation of a repository, not the
/// reading of the one there is. Fails until `ensure` tells the two apart.
#[test]
fn an_s3_repository_whose_server_is_down_is_not_taken_for_a_missing_one() {
    let venv = moto_venv();
    let (work, env) = setup("9467-9499");
    let (label, _deployed) = Deployed::label("br-s3down", &env);
    let moto = Moto::start(&venv, &work.path().join("moto.log"));
    let url = format!("s3:http://127.0.0.1:{}/nua-br/repo", moto.port);
    let password = Password::new(work.path(), "br-s3down");
    let aws = [
        ("AWS_ACCESS_KEY_ID", "nua-test-key"),
        ("AWS_SECRET_ACCESS_KEY", "nua-test-secret"),
    ];
    // The repository exists: made by restic itself.
    run_ok(
        Command::new("restic")
            .args(["--no-cache", "init"])
            .env("RESTIC_REPOSITORY", &url)
            .env("RESTIC_PASSWORD", &password.text)
            .envs(aws),
    );
    assert!(moto
        .keys("nua-br", "repo/")
        .contains(&"repo/config".to_owned()));
    let mut hits = deploy_counter(work.path(), &env, &label, 1);

    let port = moto.port;
    drop(moto);
    let vars = [
        ("NUA_BACKUP_REPOSITORY", url.as_str()),
        ("NUA_BACKUP_PASSWORD_FILE", password.path()),
        aws[0],
        aws[1],
    ];
    let ran = nua_ran(&env, &["backup", &label], &vars);
    assert_eq!(ran.code, Some(1), "{ran:#?}");
    assert!(ran.stderr.contains(&format!("`{url}`")), "{ran:#?}");
    assert!(
        ran.stderr.contains(&format!(
            "dial tcp 127.0.0.1:{port}: connect: connection refused"
        )),
        "{ran:#?}"
    );
    assert!(!ran.text().contains(&password.text), "{ran:#?}");
    hits.hit();
    assert!(
        !ran.stderr.contains("restic init") && !ran.stderr.contains("create repository"),
        "an existing repository whose server does not answer is not one to create:\n{}",
        ran.stderr
    );
}
