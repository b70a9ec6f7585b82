//! The reference registry (Debian's `docker-registry`, distribution 2.8) started by a test on
//! 127.0.0.1, in the three set-ups of issue 3: no auth, htpasswd basic auth, and token auth
//! with the token service of [`super::token`].
//!
//! Each registry gets a free port, a fresh storage folder and its own log file, and is killed
//! with its folder removed on Drop. Plain HTTP only: clients need `--insecure-registry` or
//! `--tls-verify=false`.

use std::fmt::Write as _;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::token::{TokenRequest, TokenService, ISSUER, SERVICE};

/// How clients authenticate to a [`Registry`].
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    /// htpasswd (bcrypt) with this single user.
    Basic {
        user: String,
        password: String,
    },
    /// Bearer tokens from a token service the harness runs, for this single user.
    Token {
        user: String,
        password: String,
    },
}

impl Auth {
    pub fn basic(user: &str, password: &str) -> Auth {
        Auth::Basic {
            user: user.into(),
            password: password.into(),
        }
    }

    pub fn token(user: &str, password: &str) -> Auth {
        Auth::Token {
            user: user.into(),
            password: password.into(),
        }
    }
}

/// A real `docker-registry serve` on 127.0.0.1, killed on Drop.
pub struct Registry {
    child: Child,
    port: u16,
    log: PathBuf,
    token: Option<TokenService>,
    // Last: removed after the registry is killed.
    dir: tempfile::TempDir,
}

impl Registry {
    /// Start a registry with fresh storage on a free port; returns once it answers `/v2/`.
    pub fn start(auth: Auth) -> Registry {
        for tool in ["docker-registry", "htpasswd", "openssl"] {
            assert!(
                Command::new("sh")
                    .arg("-c")
                    .arg(format!("command -v {tool}"))
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success()),
                "`{tool}` is missing\nhint: run `scripts/test-env.sh setup`"
            );
        }
        let mut dir = tempfile::Builder::new()
            .prefix("nua-registry-")
            .tempdir()
            .unwrap();
        let (auth_yaml, mut token) = auth_config(&auth, dir.path());
        let log = dir.path().join("registry.log");
        // Another process may take the free port between our probe and the registry's bind:
        // try a few ports before giving up.
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let config = dir.path().join("config.yml");
            std::fs::write(&config, config_yaml(dir.path(), port, &auth_yaml)).unwrap();
            let mut cmd = Command::new("docker-registry");
            cmd.arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
                .stderr(Stdio::from(
                    std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
                ));
            // `REGISTRY_*` variables override the configuration file.
            for (name, _) in std::env::vars_os() {
                if name.to_string_lossy().starts_with("REGISTRY_") {
                    cmd.env_remove(name);
                }
            }
            let child = cmd.spawn().expect("start docker-registry");
            let mut registry = Registry {
                child,
                port,
                log: log.clone(),
                token,
                dir,
            };
            if registry.wait_ready(Duration::from_secs(20)) {
                return registry;
            }
            last_log = registry.log();
            // Take the parts back for the next attempt; Drop kills the failed child.
            let _ = registry.child.kill();
            let _ = registry.child.wait();
            token = registry.token.take();
            dir = std::mem::replace(&mut registry.dir, tempfile::tempdir().unwrap());
        }
        panic!("docker-registry did not come up; its log:\n{last_log}");
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's log file (stdout and stderr), to name in a failing test's message.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// What the registry logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Requests the token service answered (empty unless [`Auth::Token`]).
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.token
            .as_ref()
            .map(TokenService::requests)
            .unwrap_or_default()
    }

    /// The folder holding the registry's storage (`storage/docker/registry/v2/...`), to
    /// check what a push left there.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Poll `GET /v2/` until it answers 200 (no auth) or 401 (auth), or the child exits.
    fn wait_ready(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if matches!(get_status(&self.host(), "/v2/"), Some(200 | 401)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let mut msg = format!("last lines of the registry log {}:\n", self.log.display());
            for line in tail.iter().rev() {
                let _ = writeln!(msg, "  {line}");
            }
            eprint!("{msg}");
        }
    }
}

/// The `auth:` section for `auth` (empty for none), and the token service it needs.
fn auth_config(auth: &Auth, dir: &Path) -> (String, Option<TokenService>) {
    match auth {
        Auth::None => (String::new(), None),
        Auth::Basic { user, password } => {
            // The registry accepts only bcrypt entries.
            let entry = super::run_ok(Command::new("htpasswd").args(["-Bbn", user, password]));
            let path = dir.join("htpasswd");
            std::fs::write(&path, entry.trim_end().to_owned() + "\n").unwrap();
            let yaml = format!(
                "auth:\n  htpasswd:\n    realm: nua-test-realm\n    path: {}\n",
                path.display()
            );
            (yaml, None)
        }
        Auth::Token { user, password } => {
            let (service, cert) = TokenService::start(dir, user, password);
            let yaml = format!(
                "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    \
                 rootcertbundle: {}\n",
                service.realm(),
                cert.display()
            );
            (yaml, Some(service))
        }
    }
}

fn config_yaml(dir: &Path, port: u16, auth: &str) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: info\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: nua-test-secret\n\
         {auth}",
        dir.join("storage").display()
    )
}

/// A port of 127.0.0.1 that nothing listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().unwrap().port()
}

/// Status of a plain `GET` (no auth), or `None` when nothing answers.
pub fn get_status(host: &str, path: &str) -> Option<u16> {
    let mut conn = TcpStream::connect(host).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let head = super::http::Head::read(&mut BufReader::new(conn)).ok()??;
    Some(head.status())
}
