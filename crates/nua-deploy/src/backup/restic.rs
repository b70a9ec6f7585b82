//! A restic repository, driven through Debian's `restic` binary. The repository and its
//! password reach restic through its environment (`RESTIC_REPOSITORY`, `RESTIC_PASSWORD`),
//! never its arguments, so neither shows in a process list or an error.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::Deserialize;

/// Where backups go.
#[derive(Debug, Clone)]
pub struct Repository {
    /// A local folder, or any URL restic takes (`sftp:`, `s3:`, `rest:`).
    pub url: String,
    pub password: String,
    /// restic's own cache (index and tree blobs), under the state folder.
    pub cache: PathBuf,
    /// The restic binary.
    pub binary: PathBuf,
    /// Extended options of restic's backends (`-o sftp.command=…`, `-o s3.region=…`).
    pub options: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot run `{}`", binary.display())]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// restic said no; `message` is its standard error, with the password never in it.
    #[error("restic {action} failed on the repository `{repository}`: {message}")]
    Failed {
        action: String,
        repository: String,
        message: String,
    },
}

impl Error {
    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Spawn { .. } => {
                Some("install restic (`apt install restic`), or name it with `NUA_RESTIC`".into())
            }
            Error::Failed { message, .. } if message.contains("wrong password") => Some(
                "the repository was made with another password: give it with \
                 `NUA_BACKUP_PASSWORD_FILE`"
                    .into(),
            ),
            Error::Failed { message, .. }
                if message.contains("connection refused")
                    || message.contains("unable to start the sftp session")
                    || message.contains("no such host") =>
            {
                Some(
                    "the repository's server does not answer: check that it runs, and \
                     `NUA_BACKUP_REPOSITORY` and `NUA_BACKUP_OPTIONS`"
                        .into(),
                )
            }
            Error::Failed { message, .. } if message.contains("repository is already locked") => {
                Some("another restic works on it; when none does, `restic unlock` removes the stale lock".into())
            }
            _ => None,
        }
    }
}

/// What `restic backup --json` says at the end.
#[derive(Debug, Clone, Deserialize)]
pub struct Summary {
    pub snapshot_id: String,
    /// Bytes the repository grew by (after deduplication and compression).
    #[serde(default)]
    pub data_added: u64,
    #[serde(default)]
    pub total_bytes_processed: u64,
}

/// One snapshot, as `restic snapshots --json` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Snapshot {
    pub id: String,
    pub time: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
}

impl Snapshot {
    /// The value of the tag `key=value`.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find_map(|t| t.strip_prefix(key)?.strip_prefix('='))
    }
}

/// A `restic backup --stdin` running: write the stream to [`Upload::input`], then
/// [`Upload::commit`] it into a snapshot, or [`Upload::abort`] and no snapshot is made.
pub struct Upload<'a> {
    repository: &'a Repository,
    child: Child,
    input: Option<std::process::ChildStdin>,
    /// restic's standard output and error, read from the start: unread, its progress
    /// would fill the pipe during a long upload, and restic would stop reading its input.
    said: Option<std::thread::JoinHandle<(String, String)>>,
}

/// Read a child's standard output and error to their ends, on threads of their own.
fn read_outputs(child: &mut Child) -> std::thread::JoinHandle<(String, String)> {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    std::thread::spawn(move || {
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut stderr) = stderr {
                let _ = stderr.read_to_string(&mut text);
            }
            text
        });
        let mut out = String::new();
        if let Some(mut stdout) = stdout {
            let _ = stdout.read_to_string(&mut out);
        }
        (out, errors.join().unwrap_or_default())
    })
}

impl Upload<'_> {
    pub fn input(&mut self) -> &mut std::process::ChildStdin {
        self.input.as_mut().expect("the input is open until commit")
    }

    /// Close the stream: restic stores it and says which snapshot holds it.
    pub fn commit(mut self) -> Result<Summary, Error> {
        drop(self.input.take());
        let status = self
            .child
            .wait()
            .map_err(|e| self.repository.failed("backup", e.to_string()))?;
        let (stdout, stderr) = self.said();
        if !status.success() {
            return Err(self.repository.failed("backup", stderr));
        }
        stdout
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|v| v["message_type"] == "summary")
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or_else(|| {
                self.repository
                    .failed("backup", "it said nothing of the snapshot it made".into())
            })
    }

    /// Stop restic before it sees the end of the stream: it makes no snapshot (the data it
    /// already sent stays unreferenced until the next prune). When restic had already
    /// stopped by itself (a full disk, a lost connection), what it said: that is why the
    /// stream broke.
    pub fn abort(mut self) -> Option<Error> {
        // A moment for a restic that is failing to finish saying why.
        let started = std::time::Instant::now();
        let mut exited = None;
        while started.elapsed() < Duration::from_millis(500) {
            if let Ok(Some(status)) = self.child.try_wait() {
                exited = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if exited.is_none() {
            // SIGINT: restic cancels, removes its lock, and saves nothing. The stream stays
            // open until it has exited, so it never sees its end.
            // SAFETY: the pid is of our own child, not yet waited for.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
            let started = std::time::Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Ok(None) = self.child.try_wait() {
                let _ = self.child.kill();
                let _ = self.child.wait();
                // Killed, it left its lock: a lock of a process that is gone is stale.
                let _ = self
                    .repository
                    .locking(&["unlock"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        drop(self.input.take());
        let status = self.child.wait().ok()?;
        let (_, stderr) = self.said();
        (exited.is_some() && !status.success()).then(|| self.repository.failed("backup", stderr))
    }

    /// What restic printed, once it has exited.
    fn said(&mut self) -> (String, String) {
        self.said
            .take()
            .and_then(|reader| reader.join().ok())
            .unwrap_or_default()
    }
}

/// [`Child::wait_with_output`] for a child whose stdin is already taken: status, stdout,
/// stderr (as text).
trait WaitTaken {
    fn wait_with_output_taken(
        &mut self,
    ) -> std::io::Result<(std::process::ExitStatus, String, String)>;
}

impl WaitTaken for Child {
    fn wait_with_output_taken(
        &mut self,
    ) -> std::io::Result<(std::process::ExitStatus, String, String)> {
        let mut stderr = self.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(stderr) = stderr.as_mut() {
                let _ = stderr.read_to_string(&mut text);
            }
            text
        });
        let mut stdout = String::new();
        if let Some(out) = self.stdout.as_mut() {
            out.read_to_string(&mut stdout)?;
        }
        let status = self.wait()?;
        let stderr = reader.join().unwrap_or_default();
        Ok((status, stdout, stderr))
    }
}

/// What restic said when it failed, or how it ended when it said nothing.
fn reason(status: &std::process::ExitStatus, stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr).trim().to_owned();
    if text.is_empty() {
        format!("it said nothing and {status}")
    } else {
        text
    }
}

impl Repository {
    /// restic with the repository and its password in its environment, for a command that
    /// only reads (`--no-lock`: it never waits for, nor leaves, a lock).
    fn command(&self) -> Command {
        let mut command = self.locking(&[]);
        command.arg("--no-lock");
        command
    }

    /// The same, taking the repository's lock (every command that writes).
    fn locking(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .env("RESTIC_REPOSITORY", &self.url)
            .env("RESTIC_PASSWORD", &self.password)
            .env_remove("RESTIC_PASSWORD_FILE")
            .env_remove("RESTIC_PASSWORD_COMMAND")
            .arg("--cache-dir")
            .arg(&self.cache);
        for option in &self.options {
            command.arg("-o").arg(option);
        }
        command.args(args).stdin(Stdio::null());
        command
    }

    fn failed(&self, action: &str, stderr: String) -> Error {
        let message = stderr
            .replace(&self.password, "<password>")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        Error::Failed {
            action: action.to_owned(),
            repository: self.url.clone(),
            message: if message.is_empty() {
                "it gave no reason".into()
            } else {
                message
            },
        }
    }

    /// Start `command`, its output and error output piped.
    fn spawn(&self, command: &mut Command) -> Result<Child, Error> {
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Spawn {
                binary: self.binary.clone(),
                source,
            })
    }

    /// Run `command` to its end: its status, output and error output.
    fn output(&self, command: &mut Command) -> Result<std::process::Output, Error> {
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .map_err(|source| Error::Spawn {
                binary: self.binary.clone(),
                source,
            })
    }

    fn run(&self, action: &str, mut command: Command) -> Result<String, Error> {
        let output = self.output(&mut command)?;
        if !output.status.success() {
            return Err(self.failed(action, reason(&output.status, &output.stderr)));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Make the repository when there is none yet (a local one: its folder too).
    pub fn ensure(&self) -> Result<(), Error> {
        let mut probe = self.command();
        probe.args(["cat", "config"]);
        let output = self.output(&mut probe)?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = reason(&output.status, &output.stderr);
        // restic 0.14 says so in words (later ones also exit with 10).
        // Only what says the repository is not there: restic also asks "Is there a
        // repository at the following location?" when its server does not answer, and a
        // repository that exists but cannot be reached is never made again.
        let missing = stderr.contains("does not exist")
            || stderr.contains("no such file or directory")
            || output.status.code() == Some(10);
        if !missing {
            return Err(self.failed("cat config", stderr));
        }
        self.run("init", self.locking(&["init"])).map(|_| ())
    }

    /// Start `restic backup --stdin` of a stream stored as `/filename`, with `tags`.
    pub fn upload(&self, filename: &str, tags: &[String]) -> Result<Upload<'_>, Error> {
        let mut command = self.locking(&[
            "backup",
            "--stdin",
            "--stdin-filename",
            filename,
            "--host",
            "nua",
            "--json",
            // Only the summary: no progress line every fraction of a second.
            "--quiet",
        ]);
        for tag in tags {
            command.arg("--tag").arg(tag);
        }
        let mut child = self.spawn(command.stdin(Stdio::piped()))?;
        let input = child.stdin.take();
        let said = Some(read_outputs(&mut child));
        Ok(Upload {
            repository: self,
            child,
            input,
            said,
        })
    }

    /// Stream `/filename` of `snapshot` to `out`, read back from the repository (a damaged
    /// pack fails here).
    pub fn download(
        &self,
        snapshot: &str,
        filename: &str,
        out: &mut dyn FnMut(&mut (dyn Read + Send)) -> std::io::Result<()>,
    ) -> Result<(), Error> {
        let mut command = self.command();
        command.args(["dump", snapshot, &format!("/{filename}")]);
        let mut child = self.spawn(&mut command)?;
        let mut stdout = child.stdout.take().expect("piped");
        let consumed = out(&mut stdout);
        // What the consumer left unread is drained, so restic is not stuck on a full pipe.
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        let (status, _, stderr) = child
            .wait_with_output_taken()
            .map_err(|e| self.failed("dump", e.to_string()))?;
        if !status.success() {
            return Err(self.failed("dump", stderr));
        }
        consumed.map_err(|e| self.failed("dump", format!("its output could not be used: {e}")))
    }

    /// The snapshots carrying every tag of `tags`.
    pub fn snapshots(&self, tags: &[String]) -> Result<Vec<Snapshot>, Error> {
        let mut command = self.command();
        command.args(["snapshots", "--json"]);
        if !tags.is_empty() {
            command.arg("--tag").arg(tags.join(","));
        }
        let text = self.run("snapshots", command)?;
        serde_json::from_str(text.trim())
            .or_else(|_| {
                if text.trim() == "null" {
                    Ok(Vec::new())
                } else {
                    Err(())
                }
            })
            .map_err(|()| self.failed("snapshots", "its listing is not JSON".into()))
    }

    /// Forget the snapshots `ids`, then remove the data no snapshot needs any more.
    pub fn forget(&self, ids: &[String]) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut command = self.locking(&["forget", "--prune"]);
        command.args(ids);
        self.run("forget --prune", command).map(|_| ())
    }

    /// Forget the snapshots `ids`; their data stays until a prune.
    pub fn forget_only(&self, ids: &[String]) -> Result<(), Error> {
        let mut command = self.locking(&["forget"]);
        command.args(ids);
        self.run("forget", command).map(|_| ())
    }

    /// `restic check`: the repository's structure, and `read_data` the content of every pack.
    pub fn check(&self, read_data: bool) -> Result<(), Error> {
        let mut command = self.locking(&["check"]);
        if read_data {
            command.arg("--read-data");
        }
        self.run("check", command).map(|_| ())
    }
}
