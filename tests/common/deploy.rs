//! `nua deploy` as the deploy tests drive it: a test's cache and state, guards that remove
//! what it deployed whatever its outcome, deploy files of the PostgreSQL counter fixture.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use super::docker::http_get;
use super::run::nua;
use super::*;

pub fn container_named(name: &str) -> bool {
    let out = run_ok(Command::new("docker").args([
        "ps",
        "-a",
        "--filter",
        &format!("name=^{name}$"),
        "-q",
    ]));
    !out.trim().is_empty()
}

/// Wait (at most `secs` seconds) until `check` says yes.
pub fn wait_until(secs: u64, what: &str, check: impl Fn() -> bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !check() {
        assert!(
            std::time::Instant::now() < until,
            "{what} did not happen in {secs}s"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// The labels a test deploys, removed with their volumes whatever its outcome.
pub struct Deployed {
    pub labels: Vec<String>,
    pub env: Env,
}

impl Deployed {
    /// A label unique to this test process (`PREFIX-PID`), removed with its volumes when
    /// the guard is dropped.
    pub fn label(prefix: &str, env: &Env) -> (String, Deployed) {
        let label = format!("{prefix}-{}", std::process::id());
        let guard = Deployed {
            labels: vec![label.clone()],
            env: env.clone(),
        };
        (label, guard)
    }
}

impl Drop for Deployed {
    fn drop(&mut self) {
        for label in &self.labels {
            let _ = self.env.nua(&["remove", label, "--volumes"]);
            // Whatever the state says, nothing of the instance stays in Docker.
            let filter = format!("label=nua.instance={label}");
            if let Ok(out) = Command::new("docker")
                .args(["ps", "-aq", "--filter", &filter])
                .output()
            {
                for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("docker").args(["rm", "-f", id]).output();
                }
            }
        }
    }
}

/// Where a test's `nua` keeps its cache and state.
#[derive(Clone)]
pub struct Env {
    pub cache: PathBuf,
    pub state: PathBuf,
    /// `NUA_PORT_RANGE`: each test its own, so tests deploying side by side never race for
    /// a port.
    pub ports: String,
    /// Nua's own nginx: its HTTP port and tree; none (`NUA_PROXY=none`) unless a test asks.
    pub proxy: Option<(u16, PathBuf)>,
}

impl Env {
    pub fn nua(&self, args: &[&str]) -> Output {
        self.nua_with(args, &[])
    }

    pub fn nua_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        run(self.command(args).envs(vars.iter().copied()))
    }

    /// `nua ARGS` started in the background (`nua server`, a deploy to kill).
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.spawn_with(args, &[])
    }

    pub fn spawn_with(&self, args: &[&str], vars: &[(&str, &str)]) -> std::process::Child {
        self.command(args)
            .envs(vars.iter().copied())
            .spawn()
            .unwrap()
    }

    /// [`Env::spawn_with`] with its standard error piped, for the test to read.
    pub fn spawn_piped(&self, args: &[&str], vars: &[(&str, &str)]) -> std::process::Child {
        self.command(args)
            .envs(vars.iter().copied())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `nua ARGS` with this test's cache, state, ports and proxy.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = nua();
        command
            .args(args)
            .env("NUA_CACHE_DIR", &self.cache)
            .env("NUA_STATE_DIR", &self.state)
            .env("NUA_PORT_RANGE", &self.ports);
        match &self.proxy {
            // No certificates unless a test asks for them (from its own CA).
            Some((port, dir)) => command
                .env("NUA_ACME", "off")
                .env("NUA_PROXY", "own")
                .env("NUA_HTTP_PORT", port.to_string())
                .env("NUA_HTTPS_PORT", (port + 1).to_string())
                .env("NUA_PROXY_DIR", dir),
            None => command.env("NUA_PROXY", "none"),
        };
        command
    }

    /// Serve the domains through Nua's own nginx on `port` (HTTPS on the next one), its tree
    /// in `dir`; it is stopped when the returned guard is dropped.
    pub fn with_proxy(&mut self, port: u16, dir: PathBuf) -> ProxyGuard {
        self.proxy = Some((port, dir.clone()));
        ProxyGuard(dir)
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.nua(args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(out.status.success(), "nua {args:?}:\n{stdout}\n{stderr}");
        stdout
    }
}

/// Stops the nginx of a test's proxy tree.
pub struct ProxyGuard(PathBuf);

impl Drop for ProxyGuard {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.0.join("run/nginx.pid")).unwrap_or_default();
        if let Ok(pid) = pid.trim().parse::<i32>() {
            // SAFETY: the master pid the test's nginx wrote.
            unsafe { libc::kill(pid, libc::SIGQUIT) };
        }
    }
}

/// A deploy file with one site per label, all of the PostgreSQL counter.
pub fn deploy_file(dir: &Path, labels: &[String]) -> PathBuf {
    let app = fixture_app("pg-counter");
    let mut text = String::new();
    for label in labels {
        text.push_str(&format!(
            "[[site]]\nimage = \"{}\"\nlabel = \"{label}\"\ndomain = \"{label}.example.com\"\n\n",
            app.display()
        ));
    }
    let file = dir.join("deploy.toml");
    std::fs::write(&file, text).unwrap();
    file
}

/// A work folder and the cache (bases built), state and port range of a test's `nua`, for
/// the PostgreSQL counter.
pub fn setup(ports: &str) -> (tempfile::TempDir, Env) {
    setup_with(ports, &["postgres-15"])
}

/// [`setup`] for apps whose providers run on the Nua images of `providers`.
pub fn setup_with(ports: &str, providers: &[&str]) -> (tempfile::TempDir, Env) {
    test_env();
    // Provider images are built once per machine in the shared cache, like the app's base.
    for base in providers {
        shared_base(base);
    }
    let work = temp_dir();
    let env = Env {
        cache: cache_with_base("python", work.path()),
        state: work.path().join("state"),
        ports: ports.to_owned(),
        proxy: None,
    };
    (work, env)
}

/// The host port of each instance, from `nua status --json`.
pub fn ports(env: &Env) -> Vec<(String, u16)> {
    let status: Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    status
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let port = s["ports"][0]["host"].as_u64().unwrap() as u16;
            (s["label"].as_str().unwrap().to_owned(), port)
        })
        .collect()
}

pub fn get(port: u16, path: &str) -> String {
    http_get(port, path).unwrap().1
}

/// Requests through the proxy, one after the other, while something replaces an app: each
/// must get a 200, or a 503 that says when to come back (`Retry-After: 5`).
pub struct MaintenanceLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Answers>,
}

/// What a [`MaintenanceLoad`] got: how many 200s, the bodies of its 503s (each once), and
/// the other answers.
type Answers = (
    usize,
    std::collections::BTreeSet<String>,
    usize,
    Vec<String>,
);

impl MaintenanceLoad {
    pub fn start(port: u16, host: &str) -> MaintenanceLoad {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, host) = (stop.clone(), host.to_owned());
        let thread = std::thread::spawn(move || {
            use std::io::{Read as _, Write as _};
            let (mut ok, mut unavailable, mut failed) = (0, 0, Vec::new());
            let mut said = std::collections::BTreeSet::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let answer = (|| -> std::io::Result<String> {
                    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
                    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
                    write!(s, "GET / HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
                    let mut text = String::new();
                    s.read_to_string(&mut text)?;
                    Ok(text)
                })();
                match answer {
                    Ok(text) if text.starts_with("HTTP/1.1 200") => ok += 1,
                    Ok(text)
                        if text.starts_with("HTTP/1.1 503") && text.contains("Retry-After: 5") =>
                    {
                        unavailable += 1;
                        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
                        said.insert(body.trim().to_owned());
                    }
                    other => failed.push(format!("{other:?}")),
                }
            }
            (ok, said, unavailable, failed)
        });
        // A few answers before what is measured starts.
        std::thread::sleep(std::time::Duration::from_millis(300));
        MaintenanceLoad { stop, thread }
    }

    /// Stop (after a few more answers): how many got a 200, how many a 503, and what the
    /// others got.
    pub fn finish(self) -> (usize, usize, Vec<String>) {
        let (ok, _, unavailable, failed) = self.stop_and_join();
        (ok, unavailable, failed)
    }

    fn stop_and_join(self) -> Answers {
        std::thread::sleep(std::time::Duration::from_millis(300));
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }

    /// Stop, and assert that every request got a 200 or a 503 with `Retry-After`, some of
    /// each (the app was down for a while, and answered before and after): the bodies of
    /// the 503s, each once.
    pub fn finish_with_503s_only(self) -> std::collections::BTreeSet<String> {
        let (ok, said, unavailable, failed) = self.stop_and_join();
        assert!(
            failed.is_empty(),
            "{} failed: {:?}",
            failed.len(),
            &failed[..failed.len().min(3)]
        );
        assert!(
            unavailable > 0,
            "no 503 while it was replaced ({ok} answered)"
        );
        assert!(ok > 0);
        said
    }
}

/// Requests through the proxy from two threads, as fast as they come back, until stopped:
/// how many were sent, and the failures (no answer, or not a 200) with what they got.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<(usize, Vec<String>)>>,
    started: std::time::Instant,
}

impl Load {
    pub fn start(port: u16, host: &str, path: &str) -> Load {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..2)
            .map(|_| {
                let (stop, host, path) = (stop.clone(), host.to_owned(), path.to_owned());
                std::thread::spawn(move || {
                    let (mut sent, mut failed) = (0, Vec::new());
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        sent += 1;
                        match super::docker::http_get_host(port, &host, &path) {
                            Ok((status, _)) if status.contains(" 200 ") => {}
                            other => failed.push(format!("{other:?}")),
                        }
                    }
                    (sent, failed)
                })
            })
            .collect();
        Load {
            stop,
            threads,
            started: std::time::Instant::now(),
        }
    }

    /// Stop, and assert that not one request failed.
    pub fn finish_without_loss(self) {
        let (sent, failed) = self.finish();
        assert!(
            failed.is_empty(),
            "{} of {sent} failed: {:?}",
            failed.len(),
            &failed[..failed.len().min(5)]
        );
    }

    pub fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let seconds = self.started.elapsed().as_secs_f64();
        let (mut sent, mut failed) = (0, Vec::new());
        for thread in self.threads {
            let (s, f) = thread.join().unwrap();
            sent += s;
            failed.extend(f);
        }
        eprintln!(
            "load: {sent} requests in {seconds:.1} s ({:.0}/s), {} failed",
            sent as f64 / seconds,
            failed.len()
        );
        (sent, failed)
    }
}
