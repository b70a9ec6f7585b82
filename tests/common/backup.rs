//! What the backup tests share: restic run by the test itself on a repository whose password
//! it chose, SQL in the PostgreSQL counter's database, and the faults they inject (a failing
//! `pg_dump`, damaged pack files, a full file system).

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use super::deploy::{deploy_file, get, ports, Env};
use super::*;

/// How a `nua` command ended.
#[derive(Debug)]
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Everything it printed, for the assertions on what no message may hold.
    pub fn text(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// `nua ARGS` with `vars` added to its environment.
pub fn nua_ran(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> Ran {
    let out = env.nua_with(args, vars);
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The backups of `label`, oldest first, as `nua backups --json` lists them.
pub fn backups(env: &Env, label: &str) -> Vec<Value> {
    let listed: Value = serde_json::from_str(&env.ok(&["backups", label, "--json"])).unwrap();
    listed.as_array().unwrap().clone()
}

/// A repository password the test chose (by default Nua makes one and keeps it encrypted in
/// its state, out of a test's reach), in a file for `NUA_BACKUP_PASSWORD_FILE`.
pub struct Password {
    pub text: String,
    pub file: PathBuf,
}

impl Password {
    pub fn new(dir: &Path, name: &str) -> Password {
        // Unique to the run, so that finding it in a message cannot be a coincidence.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let text = format!("{name}-{}-{nanos:x}", std::process::id());
        let file = dir.join(format!("{name}.password"));
        std::fs::write(&file, format!("{text}\n")).unwrap();
        Password { text, file }
    }

    pub fn path(&self) -> &str {
        self.file.to_str().unwrap()
    }
}

/// restic on the repository at `repository`, opened with `password`; restic's own cache is
/// not used, so nothing the test does changes what Nua's restic finds in its cache.
pub fn restic(repository: &Path, password: &Password, args: &[&str]) -> Output {
    run(Command::new("restic")
        .arg("--no-cache")
        .args(args)
        .env("RESTIC_REPOSITORY", repository)
        .env("RESTIC_PASSWORD", &password.text)
        .env_remove("RESTIC_PASSWORD_FILE")
        .env_remove("RESTIC_PASSWORD_COMMAND"))
}

/// The snapshots of the repository tagged `tag` (restic 0.14 prints `[]` or `null` for none).
pub fn snapshots(repository: &Path, password: &Password, tag: &str) -> Vec<Value> {
    let out = restic(
        repository,
        password,
        &["snapshots", "--no-lock", "--json", "--tag", tag],
    );
    assert!(
        out.status.success(),
        "restic snapshots: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Null => Vec::new(),
        Value::Array(list) => list,
        other => panic!("restic snapshots printed {other}"),
    }
}

/// The files of the repository's `locks` folder: restic removes its lock when it ends, unless
/// it was killed.
pub fn locks(repository: &Path) -> Vec<String> {
    match std::fs::read_dir(repository.join("locks")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// `sql` run by psql as the database's own user in a PostgreSQL provider; its output,
/// unaligned and without headers.
pub fn psql(container: &str, sql: &str) -> String {
    run_ok(Command::new("docker").args([
        "exec",
        container,
        "sh",
        "-c",
        "psql -X -q -A -t -v ON_ERROR_STOP=1 -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" -c \"$1\"",
        "nua",
        sql,
    ]))
    .trim()
    .to_owned()
}

/// Add the table `filler` with `rows` rows of 128 hexadecimal characters each (md5 sums,
/// which compress to about half): `rows` 160 000 is some 20 MB of data, a dump of several
/// restic chunks.
pub fn fill(container: &str, rows: u64) {
    psql(
        container,
        &format!(
            "CREATE TABLE filler (id integer PRIMARY KEY, body text NOT NULL); \
             INSERT INTO filler SELECT g, md5(g::text) || md5((g * 7)::text) || \
             md5((g * 13)::text) || md5((g * 31)::text) FROM generate_series(1, {rows}) g"
        ),
    );
}

/// The PostgreSQL counter's answers: each `/hit` must count one more than the last.
pub struct Hits {
    pub port: u16,
    pub label: String,
    pub n: u64,
}

impl Hits {
    #[track_caller]
    pub fn hit(&mut self) {
        self.n += 1;
        assert_eq!(
            get(self.port, "/hit"),
            format!("{} hits={}\n", self.label, self.n),
            "the app answers, on the data it had"
        );
    }
}

/// `pg_dump` of a provider container replaced by a script that prints `PGDMP` and `bytes`
/// zero bytes, then `stderr` on its standard error, and exits with `code`; the real one is
/// put back by [`FailingPgDump::put_back`] or when dropped.
pub struct FailingPgDump {
    container: String,
    path: String,
}

impl FailingPgDump {
    pub fn install(container: &str, bytes: u64, stderr: &str, code: i32) -> FailingPgDump {
        // The one a shell finds: Nua's image puts PostgreSQL's own bin folder first in PATH,
        // before Debian's `pg_wrapper` symlink in /usr/bin.
        let path = docker_root(container, "command -v pg_dump")
            .trim()
            .to_owned();
        assert!(path.ends_with("/pg_dump"), "{path}");
        docker_root(container, &format!("mv '{path}' '{path}.nua-test-real'"));
        let script = format!(
            "#!/bin/sh\nprintf PGDMP\nhead -c {bytes} /dev/zero\necho '{stderr}' >&2\n\
             exit {code}\n"
        );
        let mut write = Command::new("docker")
            .args(["exec", "-i", "-u", "root", container, "sh", "-c"])
            .arg(format!("cat >'{path}' && chmod 755 '{path}'"))
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        write
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(write.wait().unwrap().success(), "cannot write `{path}`");
        FailingPgDump {
            container: container.to_owned(),
            path,
        }
    }

    pub fn put_back(&self) {
        let path = &self.path;
        docker_root(
            &self.container,
            &format!(
                "if [ -e '{path}.nua-test-real' ]; then mv '{path}.nua-test-real' '{path}'; fi"
            ),
        );
    }
}

impl Drop for FailingPgDump {
    fn drop(&mut self) {
        let path = &self.path;
        let _ = Command::new("docker")
            .args(["exec", "-u", "root", &self.container, "sh", "-c"])
            .arg(format!(
                "if [ -e '{path}.nua-test-real' ]; then mv '{path}.nua-test-real' '{path}'; fi"
            ))
            .output();
    }
}

/// `script` run by `sh` as root in `container`; its output.
pub fn docker_root(container: &str, script: &str) -> String {
    run_ok(Command::new("docker").args(["exec", "-u", "root", container, "sh", "-c", script]))
}

/// Overwrite 16 bytes every 16 KiB of each pack file under the repository's `data` folder,
/// from its middle on and back to its start: every blob of 16 KiB or more is damaged (restic
/// chunks a stream into blobs of 512 KiB at least, but for its last). The number of packs.
pub fn damage_packs(repository: &Path) -> usize {
    let mut packs = 0;
    for fan in std::fs::read_dir(repository.join("data")).unwrap() {
        for pack in std::fs::read_dir(fan.unwrap().path()).unwrap() {
            let path = pack.unwrap().path();
            let len = std::fs::metadata(&path).unwrap().len();
            let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            let mut at = len / 2 % (16 * 1024);
            while at + 16 <= len {
                file.seek(SeekFrom::Start(at)).unwrap();
                file.write_all(b"damaged by test!").unwrap();
                at += 16 * 1024;
            }
            packs += 1;
        }
    }
    packs
}

/// A tmpfs of `size` (`mount -o size=`) at `dir`, unmounted when dropped.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        run_ok(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(dir),
        );
        Tmpfs(dir.to_owned())
    }

    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).output();
    }
}

/// The containers left with the label `nua.scratch=LABEL`.
pub fn scratch_left(label: &str) -> String {
    run_ok(Command::new("docker").args([
        "ps",
        "-aq",
        "--filter",
        &format!("label=nua.scratch={label}"),
    ]))
    .trim()
    .to_owned()
}

/// Deploy the PostgreSQL counter as `label` and hit it `n` times.
pub fn deploy_counter(work: &Path, env: &Env, label: &str, n: u64) -> Hits {
    let file = deploy_file(work, &[label.to_owned()]);
    env.ok(&["deploy", file.to_str().unwrap(), "-q"]);
    let mut hits = Hits {
        port: ports(env)[0].1,
        label: label.to_owned(),
        n: 0,
    };
    for _ in 0..n {
        hits.hit();
    }
    hits
}
