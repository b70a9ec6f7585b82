//! Nua's own nginx (`NUA_PROXY=own`): a tree under the state folder, its sites swapped in
//! whole once `nginx -t` accepts them, reloaded gracefully.
//!
//! ```text
//! <dir>/nginx.conf         the main configuration (pid, logs, temp paths, `include sites/*.conf`)
//! <dir>/sites -> sites.N   the live sites: a symbolic link, replaced in one rename
//! <dir>/sites.N/           one set of site files, each checked by `nginx -t` before it is live
//! <dir>/acme/              ACME HTTP-01 challenge files
//! <dir>/run/nginx.pid, logs/, temp/
//! ```
//!
//! A set nginx refuses never becomes live: the running nginx keeps its configuration and
//! traffic, and the error carries nginx's own message.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest as _, Sha256};

use super::{render_common, render_main, render_site, render_stream, Domain, Settings};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("there is no nginx at `{}`", binary.display())]
    NotInstalled { binary: PathBuf },
    #[error("nginx refuses the new configuration; the running one is kept:\n{message}")]
    Refused { message: String },
    #[error("nginx does not start:\n{message}")]
    Start { message: String },
    #[error("cannot write `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Render(Box<super::Error>),
    #[error("apps ask the proxy for TCP ports, but {why}")]
    Streams { why: String },
}

/// Debian's build of nginx's stream module (`libnginx-mod-stream`).
pub const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NotInstalled { .. } => Some(
                "install Debian's nginx (`apt install nginx-light`), give its path in \
                 `NUA_NGINX`, or set `NUA_PROXY=none` to put your own proxy in front"
                    .into(),
            ),
            Error::Start { message } if message.contains("does not run (no live pid") => Some(
                "start it (`systemctl start nginx`), or let Nua run its own: `NUA_PROXY=own`"
                    .into(),
            ),
            Error::Start { message }
                if message.contains("Address already in use")
                    || message.contains("port already in use") =>
            {
                Some(
                    "another program holds the port (nginx on this host, when the proxy moves \
                     to a swarm): stop it, or choose other ports with `NUA_HTTP_PORT` and \
                     `NUA_HTTPS_PORT`"
                        .into(),
                )
            }
            _ => None,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// What a [`Nginx::sync`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Synced {
    /// The site files of hosts that are new or changed, and of those removed.
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub started: bool,
    pub reloaded: bool,
}

/// The system's nginx (`NUA_PROXY=system`), whose configuration includes Nua's live sites
/// (`include DIR/sites/*.conf;`, the line `nua server install` adds). Nua never starts or
/// stops it: it checks its whole configuration with the new sites and reloads it.
#[derive(Debug, Clone)]
pub struct System {
    /// Its main configuration (`/etc/nginx/nginx.conf`).
    pub conf: PathBuf,
    /// Its pid file (`/run/nginx.pid`).
    pub pid_file: PathBuf,
}

/// nginx run elsewhere than in this machine's process table: a Swarm service's task, which
/// has the files of [`Nginx::dir`] mounted at the same path.
pub trait Task: Send + Sync {
    /// `nginx ARGS` where that nginx runs (or, when none does, where its image runs); the
    /// message nginx gives when it fails.
    fn nginx(&self, args: &[String]) -> Result<Result<(), String>, Error>;
    /// Whether it serves now.
    fn running(&self) -> Result<bool, Error>;
    /// Make it serve with the main configuration `main` as its settings say, starting it
    /// again when they changed, and wait until it does; whether it was (re)started.
    fn ensure(&self, main: &Path) -> Result<bool, Error>;
    /// `nginx ARGS -s reload`, returning once a new worker serves and the old ones stop
    /// taking connections; the message nginx gives when it fails.
    fn reload(&self, args: &[String]) -> Result<Result<(), String>, Error>;
}

/// Nua's nginx: its own, in `dir`, or the system's, with Nua's sites in `dir`, or a task
/// of a Swarm service.
pub struct Nginx {
    pub binary: PathBuf,
    pub dir: PathBuf,
    pub settings: Settings,
    pub system: Option<System>,
    /// Where it runs when it is not a process of this machine.
    pub task: Option<Box<dyn Task>>,
}

impl Nginx {
    /// The nginx of `dir`, serving ACME challenges from `dir/acme`.
    pub fn own(binary: PathBuf, dir: PathBuf, http_port: u16, https_port: u16) -> Nginx {
        let settings = Settings {
            http_port,
            https_port,
            challenges: dir.join("acme"),
            include: None,
            resolver: None,
        };
        Nginx {
            binary,
            dir,
            settings,
            system: None,
            task: None,
        }
    }

    /// Whether it serves now.
    pub fn serving(&self) -> Result<bool, Error> {
        match &self.task {
            Some(task) => task.running(),
            None => Ok(self.running().is_some()),
        }
    }

    fn pid_file(&self) -> PathBuf {
        match &self.system {
            Some(system) => system.pid_file.clone(),
            None => self.dir.join("run/nginx.pid"),
        }
    }

    /// The line the system's nginx needs (in its `http` block, e.g. `conf.d/nua.conf`).
    pub fn include_line(&self) -> String {
        format!("include {}/*.conf;\n", self.dir.join("sites").display())
    }

    /// `nginx -t` of the system's whole configuration; its message when it fails.
    fn check_system(&self, system: &System) -> Result<Result<(), String>, Error> {
        let out = Command::new(&self.binary)
            .arg("-t")
            .arg("-q")
            .arg("-c")
            .arg(&system.conf)
            .output()
            .map_err(|e| self.spawn_error(e))?;
        Ok(if out.status.success() {
            Ok(())
        } else {
            Err(nginx_message(&out.stderr))
        })
    }

    fn spawn_error(&self, e: std::io::Error) -> Error {
        match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotInstalled {
                binary: self.binary.clone(),
            },
            _ => Error::Io {
                path: self.binary.clone(),
                source: e,
            },
        }
    }

    /// The master's pid, when it runs.
    pub fn running(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.pid_file()).ok()?;
        let pid: i32 = text.trim().parse().ok()?;
        // SAFETY: signal 0 only asks whether the process exists.
        (pid > 0 && unsafe { libc::kill(pid, 0) } == 0).then_some(pid)
    }

    /// The arguments that give nginx its tree: `-p DIR -e DIR/logs/error.log`.
    fn prefix_args(&self) -> Vec<String> {
        vec![
            "-p".to_owned(),
            self.dir.display().to_string(),
            "-e".to_owned(),
            self.dir.join("logs/error.log").display().to_string(),
        ]
    }

    /// `nginx ARGS` with its prefix; stderr when it fails.
    fn nginx(&self, args: &[&str]) -> Result<Result<(), String>, Error> {
        let errors = self.dir.join("logs/error.log");
        if let Some(task) = &self.task {
            let mut argv = self.prefix_args();
            argv.extend(args.iter().map(|a| (*a).to_owned()));
            return task.nginx(&argv);
        }
        let out = Command::new(&self.binary)
            .arg("-p")
            .arg(&self.dir)
            .arg("-e")
            .arg(&errors)
            .args(args)
            .output()
            .map_err(|e| self.spawn_error(e))?;
        if out.status.success() {
            return Ok(Ok(()));
        }
        Ok(Err(nginx_message(&out.stderr)))
    }

    /// Make the live sites those of `domains`: render them into a new set, check it with
    /// `nginx -t`, make it live, then start nginx or reload it. Nothing changes while a set
    /// is refused.
    pub fn sync(&self, domains: &[Domain]) -> Result<Synced, Error> {
        for sub in ["run", "logs", "temp", "acme"] {
            let path = self.dir.join(sub);
            std::fs::create_dir_all(&path).map_err(io(&path))?;
        }
        super::check_streams(domains, &self.settings).map_err(|e| Error::Render(Box::new(e)))?;
        let mut files: Vec<(String, String)> = vec![("00-nua.conf".to_owned(), render_common())];
        for domain in domains {
            let text =
                render_site(domain, &self.settings).map_err(|e| Error::Render(Box::new(e)))?;
            files.push((format!("{}.conf", domain.host), text));
            for stream in &domain.streams {
                let text = render_stream(domain, stream).map_err(|e| Error::Render(Box::new(e)))?;
                if let Some(text) = text {
                    files.push((format!("{}-{}.stream", stream.label, stream.name), text));
                }
            }
        }
        let module = Path::new(STREAM_MODULE);
        // Nua's nginx image has it.
        let module = (self.task.is_some() || module.exists()).then_some(module);
        if files.iter().any(|(name, _)| name.ends_with(".stream")) {
            if self.system.is_some() {
                return Err(Error::Streams {
                    why: "the system's nginx has no place for Nua's `stream` block: use \
                          `NUA_PROXY=own`"
                        .into(),
                });
            }
            if module.is_none() {
                return Err(Error::Streams {
                    why: format!(
                        "nginx's stream module is not installed (`{STREAM_MODULE}`): \
                         `apt install libnginx-mod-stream`"
                    ),
                });
            }
        }
        let mut hasher = Sha256::new();
        for (name, text) in &files {
            hasher.update(name.as_bytes());
            hasher.update([0]);
            hasher.update(text.as_bytes());
            hasher.update([0]);
        }
        let set = format!("sites.{}", &hex::encode(hasher.finalize())[..12]);
        let set_dir = self.dir.join(&set);
        let live_link = self.dir.join("sites");
        let live = std::fs::read_link(&live_link).ok();
        let main = self.dir.join("nginx.conf");
        let main_text = render_main(&self.dir, &live_link, &self.settings, module)
            .map_err(|e| Error::Render(Box::new(e)))?;
        let mut synced = Synced::default();
        if live.as_deref() != Some(Path::new(&set)) {
            // A set of its own, checked as the live configuration would include it.
            let _ = std::fs::remove_dir_all(&set_dir);
            std::fs::create_dir_all(&set_dir).map_err(io(&set_dir))?;
            for (name, text) in &files {
                let path = set_dir.join(name);
                std::fs::write(&path, text).map_err(io(&path))?;
            }
            let staged = self.dir.join(format!("{set}.nginx.conf"));
            let staged_text = render_main(&self.dir, &set_dir, &self.settings, module)
                .map_err(|e| Error::Render(Box::new(e)))?;
            std::fs::write(&staged, staged_text).map_err(io(&staged))?;
            let checked = self.nginx(&["-t", "-q", "-c", &staged.display().to_string()])?;
            let _ = std::fs::remove_file(&staged);
            if let Err(message) = checked {
                let _ = std::fs::remove_dir_all(&set_dir);
                return Err(Error::Refused { message });
            }
            let before = live.as_ref().map(|l| self.dir.join(l));
            (synced.changed, synced.removed) = differences(before.as_deref(), &files);
            // The new set becomes live in one rename.
            point(&self.dir, &live_link, &set)?;
            // The system's nginx reads it with its own configuration: checked whole, and the
            // set before it put back when they do not go together.
            if let Some(system) = &self.system {
                if let Err(message) = self.check_system(system)? {
                    match &live {
                        Some(before) => point(&self.dir, &live_link, &before.to_string_lossy())?,
                        None => std::fs::remove_file(&live_link).map_err(io(&live_link))?,
                    }
                    let _ = std::fs::remove_dir_all(&set_dir);
                    return Err(Error::Refused { message });
                }
            }
        }
        if self.system.is_none()
            && std::fs::read_to_string(&main).ok().as_deref() != Some(main_text.as_str())
        {
            let staged = self.dir.join("nginx.conf.new");
            std::fs::write(&staged, &main_text).map_err(io(&staged))?;
            std::fs::rename(&staged, &main).map_err(io(&main))?;
            synced.changed.push("nginx.conf".to_owned());
        }
        let main_arg = main.display().to_string();
        // What the running nginx read last: a process stopped between making a set live and
        // reloading leaves them apart, and the next sync reloads.
        let loaded_file = self.dir.join("run/loaded");
        let loaded = std::fs::read_to_string(&loaded_file).unwrap_or_default();
        let stale =
            loaded.trim() != set || !synced.changed.is_empty() || !synced.removed.is_empty();
        if let Some(task) = &self.task {
            if task.ensure(&main)? {
                synced.started = true;
            } else if stale {
                let mut args = self.prefix_args();
                args.extend(["-c".to_owned(), main_arg.clone()]);
                task.reload(&args)?
                    .map_err(|message| Error::Start { message })?;
                synced.reloaded = true;
            }
        } else {
            match self.running() {
                Some(pid) if stale => {
                    // SIGHUP: nginx rereads its configuration, starts new workers, and tells the
                    // old ones to finish their requests and stop accepting. The reload is done
                    // once a new worker runs and every old one is shutting down (its title says
                    // so before it closes its listening sockets); a few seconds at most.
                    let before = workers(pid);
                    // SAFETY: a signal to nginx's master, whose pid it wrote.
                    unsafe { libc::kill(pid, libc::SIGHUP) };
                    for _ in 0..250 {
                        let now = workers(pid);
                        let started = now.iter().any(|w| !before.contains(w));
                        let retired = before.iter().all(|w| !now.contains(w) || shutting_down(*w));
                        if started && retired {
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    synced.reloaded = true;
                }
                Some(_) => {}
                None if self.system.is_some() => {
                    return Err(Error::Start {
                        message: format!(
                            "the system's nginx does not run (no live pid in `{}`); Nua's sites \
                         are in place for when it starts",
                            self.pid_file().display()
                        ),
                    })
                }
                None => {
                    self.nginx(&["-c", &main_arg])?
                        .map_err(|message| Error::Start { message })?;
                    synced.started = true;
                }
            }
        }
        if synced.reloaded || synced.started {
            std::fs::write(&loaded_file, &set).map_err(io(&loaded_file))?;
        }
        // Sets no longer live.
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("sites.") && name != set && !name.ends_with(".link") {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        Ok(synced)
    }

    /// Stop Nua's own nginx (`-s quit`: its workers finish their requests first) and wait
    /// for it; the system's is never stopped.
    pub fn stop(&self) -> Result<(), Error> {
        if self.system.is_some() || self.task.is_some() {
            return Ok(());
        }
        let Some(pid) = self.running() else {
            return Ok(());
        };
        // SAFETY: a signal to nginx's master, whose pid it wrote.
        unsafe { libc::kill(pid, libc::SIGQUIT) };
        for _ in 0..100 {
            if self.running().is_none() {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        Ok(())
    }
}

/// The processes whose parent is `master` (its workers), from `/proc`.
fn workers(master: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid …`: the command may hold spaces and parentheses.
            let after = &stat[stat.rfind(')')? + 1..];
            let ppid: i32 = after.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == master).then_some(pid)
        })
        .collect()
}

/// What nginx said on stderr, without its closing "test failed" line.
fn nginx_message(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("test failed") && !l.trim().is_empty())
        .collect();
    lines.join("\n")
}

/// Make the link `live` point at `target` (relative, in `dir`) in one rename.
fn point(dir: &Path, live: &Path, target: &str) -> Result<(), Error> {
    let link = dir.join(format!("{target}.link"));
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(target, &link).map_err(io(&link))?;
    std::fs::rename(&link, live).map_err(io(live))
}

/// Whether nginx process `pid` is a worker finishing its last requests.
fn shutting_down(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).map_or(true, |title| {
        String::from_utf8_lossy(&title).contains("shutting down")
    })
}

/// The site files that differ between the live set `before` and `files`, and those gone.
fn differences(before: Option<&Path>, files: &[(String, String)]) -> (Vec<String>, Vec<String>) {
    let old = |name: &str| before.and_then(|dir| std::fs::read_to_string(dir.join(name)).ok());
    let changed = files
        .iter()
        .filter(|(name, text)| old(name).as_deref() != Some(text.as_str()))
        .map(|(name, _)| name.clone())
        .collect();
    let mut removed = Vec::new();
    if let Some(Ok(entries)) = before.map(std::fs::read_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !files.iter().any(|(n, _)| *n == name) {
                removed.push(name);
            }
        }
    }
    removed.sort();
    (changed, removed)
}
