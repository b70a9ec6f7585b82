//! The containers a backup works in: scratch servers and helpers (no network, thrown away
//! after, labelled [`SCRATCH_LABEL`]) and the scripts run in them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nua_runtime::{ContainerSpec, Engine, Exec, Labels, Mount, State};

use super::{methods, verify, Backups, Error, SCRATCH_LABEL, SCRATCH_READY};

/// Removes a scratch container when dropped.
pub(super) struct Scratch<'a> {
    engine: &'a dyn Engine,
    pub(super) name: String,
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        let _ = self.engine.remove_container(&self.name);
    }
}

/// `n` random bytes, in hexadecimal.
pub(super) fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the system has randomness");
    hex::encode(bytes)
}

/// A short random suffix for scratch names.
pub(super) fn nonce() -> String {
    random_hex(4)
}

/// A new repository password (192 random bits).
pub fn new_password() -> String {
    random_hex(24)
}

/// The last lines of a command's standard error, one line, secrets never in it (a dump's
/// stderr is never in the dump).
pub(super) fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(5);
    if lines.is_empty() {
        "it printed nothing".to_owned()
    } else {
        lines[start..].join(" / ")
    }
}

/// What reads a stream restic gives back, and what it printed.
pub(super) type Consumer<'a> =
    dyn FnMut(&mut (dyn std::io::Read + Send)) -> Result<Vec<u8>, String> + 'a;

/// What a dump measured on its way out.
pub(super) enum Measured {
    Counts(BTreeMap<String, u64>),
    Tree(verify::Tree),
    /// Measured from the file once stored (Redis: its keys; MongoDB: nothing).
    Later,
}

pub(super) fn exec(command: Vec<String>) -> Exec {
    Exec {
        command,
        env: Vec::new(),
        user: Some("root".to_owned()),
    }
}

impl Backups<'_> {
    /// Remove what a backup of `label` killed halfway left behind.
    pub fn clean_scratch(&self, label: &str) {
        if let Ok(left) = self.engine.containers(SCRATCH_LABEL) {
            for container in left
                .iter()
                .filter(|c| c.labels.get(SCRATCH_LABEL).map(String::as_str) == Some(label))
            {
                let _ = self.engine.remove_container(&container.name);
            }
        }
    }

    /// Start a scratch container: `image` on no network, thrown away when dropped.
    pub(super) fn scratch(
        &self,
        label: &str,
        what: &str,
        image: &str,
        env: Vec<String>,
        command: Option<Vec<String>>,
        mounts: Vec<Mount>,
    ) -> Result<Scratch<'_>, Error> {
        let name = format!("nua-{label}-{what}-{}", nonce());
        let mut labels = Labels::new();
        labels.insert(SCRATCH_LABEL.to_owned(), label.to_owned());
        let spec = ContainerSpec {
            name: name.clone(),
            image: image.to_owned(),
            env,
            mounts,
            labels,
            network: Some("none".to_owned()),
            command,
            ..ContainerSpec::default()
        };
        self.engine.create_container(&spec)?;
        let scratch = Scratch {
            engine: self.engine,
            name,
        };
        self.engine.start_container(&scratch.name)?;
        Ok(scratch)
    }

    /// A helper that only waits (`sleep`), to exec in.
    pub(super) fn helper(
        &self,
        label: &str,
        image: &str,
        mounts: Vec<Mount>,
    ) -> Result<Scratch<'_>, Error> {
        let sleep = ["sleep", "86400"].map(str::to_owned).to_vec();
        self.scratch(label, "helper", image, Vec::new(), Some(sleep), mounts)
    }

    /// Wait until `check` passes in `container` (a scratch database server started).
    pub(super) fn wait_for(
        &self,
        container: &str,
        check: &[&str],
        what: &str,
    ) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Ok(Some(info)) = self.engine.container(container) {
                if matches!(info.state, State::Exited | State::Dead) {
                    return Err(format!(
                        "the scratch {what} exited with code {}",
                        info.exit_code.unwrap_or(-1)
                    ));
                }
            }
            if self
                .engine
                .exec(container, check)
                .is_ok_and(|o| o.exit_code == 0)
            {
                return Ok(());
            }
            if started.elapsed() > SCRATCH_READY {
                return Err(format!(
                    "the scratch {what} is not ready after {}s",
                    SCRATCH_READY.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Run a script in `container`, its output collected; with `stdin`, a stream of a known
    /// length on its standard input. The script reads exactly that many bytes (`head -c`):
    /// it never depends on the end of the stream reaching it through Docker.
    pub(super) fn run_script(
        &self,
        container: &str,
        argv: Vec<String>,
        stdin: Option<(&mut (dyn std::io::Read + Send), u64)>,
    ) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let what = argv.get(2).cloned().unwrap_or_default();
        let mut exec = exec(argv);
        let stdin = stdin.map(|(reader, bytes)| {
            let mut framed = vec![
                "sh".to_owned(),
                "-c".to_owned(),
                "script=$1; shift; head -c \"$NUA_BYTES\" | sh -c \"$script\" \"$@\"".to_owned(),
                "nua".to_owned(),
            ];
            framed.extend(exec.command.drain(2..));
            exec.command = framed;
            exec.env.push(format!("NUA_BYTES={bytes}"));
            reader
        });
        let status = self
            .engine
            .exec_stream(container, &exec, stdin, &mut out)
            .map_err(|e| e.to_string())?;
        if status.exit_code != 0 {
            let first = what.lines().nth(1).unwrap_or_default().to_owned();
            return Err(format!(
                "exit code {} ({}): {}",
                status.exit_code,
                first.trim(),
                tail(&status.stderr)
            ));
        }
        Ok(out)
    }

    /// Values of the container's environment variables (empty when unset).
    pub(super) fn env_of(&self, container: &str, names: &[&str]) -> Result<Vec<String>, String> {
        let script = names
            .iter()
            .map(|n| format!("printf '%s\\n' \"${{{n}:-}}\""))
            .collect::<Vec<_>>()
            .join("\n");
        let out = self.run_script(container, methods::sh(&script, &[]), None)?;
        let text = String::from_utf8_lossy(&out);
        let mut values: Vec<String> = text.lines().map(str::to_owned).collect();
        values.resize(names.len(), String::new());
        // The official contract's defaults: the user `postgres`, the database the user.
        if names == ["POSTGRES_USER", "POSTGRES_DB"] {
            if values[0].is_empty() {
                values[0] = "postgres".to_owned();
            }
            if values[1].is_empty() {
                values[1] = values[0].clone();
            }
        }
        Ok(values)
    }
}

impl Backups<'_> {
    /// Stop the Redis server of `container` without saving, so that it loads the file just
    /// put in place, and wait for it to answer again (Docker restarts it under its restart
    /// policy; Nua starts it when Docker does not).
    pub(super) fn restart_redis(&self, container: &str) -> Result<(), String> {
        let shutdown = methods::sh(&methods::redis_shutdown(), &[]);
        let argv: Vec<&str> = shutdown.iter().map(String::as_str).collect();
        // The server, and so the command, end: its outcome is what follows.
        let _ = self.engine.exec(container, &argv);
        let started = Instant::now();
        loop {
            let info = self
                .engine
                .container(container)
                .map_err(|e| e.to_string())?;
            match info.map(|i| i.state) {
                Some(State::Running) => {
                    let ping = ["redis-cli", "ping"];
                    if self
                        .engine
                        .exec(container, &ping)
                        .is_ok_and(|o| o.exit_code == 0 && o.stdout.starts_with(b"PONG"))
                    {
                        return Ok(());
                    }
                }
                Some(State::Exited | State::Created)
                    if started.elapsed() > Duration::from_secs(2) =>
                {
                    self.engine
                        .start_container(container)
                        .map_err(|e| e.to_string())?;
                }
                None => return Err(format!("the container `{container}` is gone")),
                _ => {}
            }
            if started.elapsed() > SCRATCH_READY {
                return Err(format!(
                    "Redis in `{container}` does not answer after {}s",
                    SCRATCH_READY.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
