//! `nua run`, `ps`, `logs` and `stop` as the run tests drive them: the `nua` binary, names
//! unique to a test, guards that remove what a test made (volumes, a `nua run` still in the
//! foreground) whatever its outcome, and locks for the fixed host ports the fixtures ask for.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{run, run_ok};

/// `nua` as built by cargo for this test run.
pub fn nua() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nua"))
}

/// A container (and image tag) name unique to this test and process:
/// `nua-test-run-<test>-<pid>`.
pub fn unique_name(test: &str) -> String {
    format!("nua-test-run-{test}-{}", std::process::id())
}

/// Serializes, within this test binary, the tests that publish on host port `port`: `nua run`
/// publishes on the nua-config's port when it is free, and a test that needs that port taken
/// (or free) must not race another test's container for it.
pub fn port_lock(port: u16) -> MutexGuard<'static, ()> {
    static LOCKS: OnceLock<Mutex<BTreeMap<u16, &'static Mutex<()>>>> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let lock = *locks
        .entry(port)
        .or_insert_with(|| Box::leak(Box::new(Mutex::new(()))));
    drop(locks);
    lock.lock().unwrap_or_else(|e| e.into_inner())
}

/// A Docker volume a test may leave behind, removed when dropped.
pub struct Volume(pub String);

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f", &self.0])
            .output();
    }
}

/// Whether Docker has a container named exactly `name`, running or not.
pub fn container_exists(name: &str) -> bool {
    let ids = run_ok(Command::new("docker").args([
        "ps",
        "-a",
        "-q",
        "--filter",
        &format!("name=^/{name}$"),
    ]));
    !ids.trim().is_empty()
}

/// Whether Docker has a volume named exactly `name`.
pub fn volume_exists(name: &str) -> bool {
    run_ok(Command::new("docker").args(["volume", "ls", "-q"]))
        .lines()
        .any(|l| l.trim() == name)
}

/// Whether Docker knows image `reference`.
pub fn image_exists(reference: &str) -> bool {
    run(Command::new("docker").args(["image", "inspect", reference]))
        .status
        .success()
}

/// `nua build APP -o OUT --json EXTRA` with cache `cache`: the result (the last JSON line).
pub fn build(app: &Path, cache: &Path, out: &Path, extra: &[&str]) -> Value {
    let stdout = run_ok(
        nua()
            .arg("build")
            .arg(app)
            .arg("--output")
            .arg(out)
            .arg("--json")
            .args(extra)
            .env("NUA_CACHE_DIR", cache),
    );
    let last = stdout.lines().last().expect("a result line");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {last}"))
}

/// The one JSON document a `--json` command printed on stdout.
#[track_caller]
pub fn json_stdout(stdout: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stdout);
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{text}"))
}

/// The host port of the port object with container port `container` in `ports` (a JSON
/// array of `{"container", "host", …}`).
#[track_caller]
pub fn host_port(ports: &Value, container: u16) -> u16 {
    ports
        .as_array()
        .unwrap_or_else(|| panic!("ports is not an array: {ports}"))
        .iter()
        .find(|p| p["container"] == container)
        .and_then(|p| p["host"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or_else(|| panic!("no host port for {container} in {ports}"))
}

/// `nua run` in the foreground: the child (killed when dropped, should the test fail before
/// it ends), its stderr line by line, its stdout collected.
pub struct Foreground {
    child: Option<Child>,
    lines: Receiver<String>,
    /// Every stderr line received so far.
    pub stderr: Vec<String>,
    stdout: Option<JoinHandle<String>>,
}

impl Foreground {
    /// Start `cmd` with stdout and stderr piped, stdin closed.
    pub fn spawn(cmd: &mut Command) -> Foreground {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stdout = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = stdout.read_to_end(&mut all);
            String::from_utf8_lossy(&all).into_owned()
        });
        Foreground {
            child: Some(child),
            lines,
            stderr: Vec::new(),
            stdout: Some(stdout),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Read stderr until a line contains `needle`; returns that line. Panics, with all stderr
    /// seen, when stderr ends or `timeout` passes first.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stderr.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no stderr line with {needle:?} after {timeout:?}; stderr so far:\n{}",
                    self.stderr.join("\n")
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "stderr ended without a line with {needle:?} (exit: {:?}); stderr:\n{}",
                    self.child.as_mut().unwrap().try_wait(),
                    self.stderr.join("\n")
                ),
            }
        }
    }

    /// Send `signal` to the child.
    pub fn signal(&self, signal: i32) {
        let pid = libc::pid_t::try_from(self.pid()).unwrap();
        // SAFETY: kill has no memory-safety preconditions; pid is our own live child.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
    }

    /// Wait (at most `timeout`) for the child to exit: its status, all its stdout, and all its
    /// stderr (the lines already read included).
    pub fn wait(mut self, timeout: Duration) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                panic!(
                    "still running after {timeout:?}; stderr so far:\n{}",
                    self.stderr.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        self.child = None;
        // The pipes close once the child and what it started are gone.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(30)) {
            self.stderr.push(line);
        }
        let stdout = self.stdout.take().unwrap().join().unwrap();
        (status, stdout, self.stderr.join("\n"))
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A copy of fixture `fixture` in `dir/app` whose `metadata.id` is `id`, so that the image
/// `nua run` builds and loads, [`image_tag`]`(id)`, is this test's alone (other tests load and
/// remove the fixtures' own tags). Returns the app folder.
pub fn app_copy(fixture: &str, dir: &Path, id: &str) -> std::path::PathBuf {
    let app = dir.join("app");
    super::copy_tree(&super::fixture_app(fixture), &app);
    let config = app.join("nua-config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let line = format!("id = \"{fixture}\"");
    assert!(text.contains(&line), "{} has no `{line}`", config.display());
    std::fs::write(&config, text.replacen(&line, &format!("id = \"{id}\""), 1)).unwrap();
    app
}

/// The image `nua build` names for app id `id`: `nua-<id>:1.0-1` (every fixture is version
/// 1.0, release 1), the `nua-` not doubled when the id has it already.
pub fn image_tag(id: &str) -> String {
    format!("nua-{}:1.0-1", id.strip_prefix("nua-").unwrap_or(id))
}

/// Run `cmd` to its end (at most `timeout`), stdin closed: its status, stdout and stderr.
pub fn run_for(cmd: &mut Command, timeout: Duration) -> (ExitStatus, String, String) {
    Foreground::spawn(cmd).wait(timeout)
}

/// The host port of the `http://127.0.0.1:<port> → <container>/tcp` line of `nua run`'s
/// stderr.
#[track_caller]
pub fn url_port(stderr: &[String], container: u16) -> u16 {
    let to = format!("{container}/tcp");
    stderr
        .iter()
        .filter(|l| l.contains(&to))
        .find_map(|l| {
            let rest = &l[l.find("http://127.0.0.1:")? + "http://127.0.0.1:".len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .unwrap_or_else(|| {
            panic!(
                "no `http://127.0.0.1:<port> → {to}` line in stderr:\n{}",
                stderr.join("\n")
            )
        })
}
