//! Backups that are proven restorable.
//!
//! An instance's components are its databases (a dump streamed out of the provider's
//! container: [`methods`]) and its managed volumes (a tar stream read by a helper container
//! of the instance's own image). Each goes into a restic repository ([`restic`]) as one
//! snapshot read from standard input: nothing is staged on local disk. What the stream holds
//! is measured on its way ([`verify`]): a database's tables and row counts in the dump's own
//! snapshot, a volume's file tree with sizes and hashes. Then the snapshot is read back from
//! the repository into a scratch container of the same image (no network, thrown away after)
//! and measured again. Only a backup whose every component matched counts as verified.
//!
//! Scratch and helper containers carry [`SCRATCH_LABEL`], never the instance's label, so the
//! reconciler never mistakes them for the instance's; one left by a killed backup is removed
//! by the next.

pub mod methods;
pub mod restic;
pub mod schedule;
pub mod verify;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use nua_runtime::{ContainerSpec, Engine, Exec, Labels, Mount, State};

use crate::instance::{Desired, Role};
pub use methods::Kind;
use restic::Repository;

/// The label of scratch and helper containers: the instance they work for.
pub const SCRATCH_LABEL: &str = "nua.scratch";

/// How long a scratch database may take to start.
const SCRATCH_READY: Duration = Duration::from_secs(120);

/// One thing of an instance that is backed up on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// The provider's name, or the volume's.
    pub name: String,
    pub kind: Kind,
    /// The container the dump is taken in (a provider), or whose image reads the volume.
    pub container: String,
    /// The image of scratch containers (the provider's, or the app's for a volume).
    pub image: String,
    /// The Docker volume (volumes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{what} of `{label}` asks for the backup method `{method}`, which Nua does not know \
         (it knows: {})",
        methods::METHODS.join(", ")
    )]
    UnknownMethod {
        label: String,
        what: String,
        method: String,
    },
    #[error("`{label}` has nothing to back up: no database provider and no managed volume")]
    Nothing { label: String },
    #[error("the backup frequency of `{label}`: {message}")]
    Frequency { label: String, message: String },
    #[error("`{label}` has no component `{name}` (it has: {known})")]
    NoComponent {
        label: String,
        name: String,
        known: String,
    },
    #[error(transparent)]
    Restic(#[from] restic::Error),
    #[error(transparent)]
    Engine(#[from] nua_runtime::Error),
    #[error(transparent)]
    State(#[from] crate::state::Error),
}

impl Error {
    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Restic(e) => e.hint(),
            _ => None,
        }
    }
}

/// What a component's backup is, and was found to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub component: String,
    pub kind: Kind,
    /// The restic snapshot holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The dump's size, and what the repository grew by.
    pub bytes: u64,
    pub added: u64,
    /// What was compared: "3 tables, 1 204 rows", "12 files, 3 folders, 1 symlink".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Milliseconds for the dump, and for the verification.
    pub dump_ms: u64,
    pub verify_ms: u64,
}

/// The components of `desired` to back up: those its nua-configs declare (`[backup]` of
/// the app, a provider or a volume), or all of them with `all` or when none is declared.
pub fn plan(desired: &Desired, all: bool) -> Result<Vec<Component>, Error> {
    let label = &desired.label;
    let app = desired.containers.iter().find(|c| c.role == Role::App);
    let app_declares = app.and_then(|a| a.backup.as_ref());
    let mut declared = app_declares.is_some();
    let mut found = Vec::new();
    for container in &desired.containers {
        let method = |what: String, b: &nua_config::Backup| {
            Kind::of_method(&b.method).ok_or_else(|| Error::UnknownMethod {
                label: label.clone(),
                what,
                method: b.method.clone(),
            })
        };
        let by_module = container.module.as_deref().and_then(Kind::of_module);
        let asked = match &container.backup {
            Some(b) if container.role == Role::Provider => {
                declared = true;
                Some(method(format!("provider `{}`", container.component), b)?)
            }
            _ => None,
        };
        if let Some(kind) = asked.or(by_module).filter(|k| *k != Kind::Volume) {
            found.push((
                container.backup.is_some(),
                Component {
                    name: container.component.clone(),
                    kind,
                    container: container.name.clone(),
                    image: container.image.clone(),
                    volume: None,
                },
            ));
            // A database's volumes are its dump.
            continue;
        }
        // `tgz_volumes` of the app names all its volumes.
        let all_volumes = container.role == Role::App
            && app_declares
                .map(|b| method("the app".into(), b))
                .transpose()?
                == Some(Kind::Volume);
        for volume in &container.volumes {
            let managed = matches!(volume.kind, None | Some(nua_config::VolumeType::Managed));
            let Some(name) = volume.name.clone().filter(|_| managed) else {
                continue;
            };
            let wanted = match &volume.backup {
                Some(b) => {
                    declared = true;
                    method(format!("volume `{name}`"), b)?;
                    true
                }
                None => all_volumes || asked == Some(Kind::Volume),
            };
            found.push((
                wanted,
                Component {
                    name: name.clone(),
                    kind: Kind::Volume,
                    container: container.name.clone(),
                    image: container.image.clone(),
                    volume: Some(name),
                },
            ));
        }
    }
    let chosen: Vec<Component> = found
        .into_iter()
        .filter(|(wanted, _)| all || !declared || *wanted)
        .map(|(_, c)| c)
        .collect();
    if chosen.is_empty() {
        return Err(Error::Nothing {
            label: label.clone(),
        });
    }
    Ok(chosen)
}

/// The frequencies the `[backup]` sections of `desired` ask for (none: not scheduled).
pub fn frequencies(desired: &Desired) -> Result<Vec<schedule::Frequency>, Error> {
    let backups = desired.containers.iter().flat_map(|c| {
        c.backup
            .iter()
            .chain(c.volumes.iter().filter_map(|v| v.backup.as_ref()))
    });
    backups
        .filter_map(|b| b.frequency.as_deref())
        .map(|text| {
            schedule::Frequency::parse(text).map_err(|message| Error::Frequency {
                label: desired.label.clone(),
                message,
            })
        })
        .collect()
}

/// Keep only the component named `name`.
pub fn only(label: &str, components: Vec<Component>, name: &str) -> Result<Vec<Component>, Error> {
    let known = components
        .iter()
        .map(|c| format!("`{}`", c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let kept: Vec<Component> = components.into_iter().filter(|c| c.name == name).collect();
    if kept.is_empty() {
        return Err(Error::NoComponent {
            label: label.to_owned(),
            name: name.to_owned(),
            known,
        });
    }
    Ok(kept)
}

/// Where and how backups run.
pub struct Backups<'a> {
    pub engine: &'a dyn Engine,
    pub repository: &'a Repository,
    /// Progress lines on standard error.
    pub quiet: bool,
}

/// Removes a scratch container when dropped.
struct Scratch<'a> {
    engine: &'a dyn Engine,
    name: String,
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        let _ = self.engine.remove_container(&self.name);
    }
}

/// `n` random bytes, in hexadecimal.
fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the system has randomness");
    hex::encode(bytes)
}

/// A short random suffix for scratch names.
fn nonce() -> String {
    random_hex(4)
}

/// A new repository password (192 random bits).
pub fn new_password() -> String {
    random_hex(24)
}

/// The last lines of a command's standard error, one line, secrets never in it (a dump's
/// stderr is never in the dump).
fn tail(stderr: &[u8]) -> String {
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
type Consumer<'a> = dyn FnMut(&mut (dyn std::io::Read + Send)) -> Result<Vec<u8>, String> + 'a;

/// What a dump measured on its way out.
enum Measured {
    Counts(BTreeMap<String, u64>),
    Tree(verify::Tree),
    /// Measured from the file once stored (Redis: its keys; MongoDB: nothing).
    Later,
}

fn exec(command: Vec<String>) -> Exec {
    Exec {
        command,
        env: Vec::new(),
        user: Some("root".to_owned()),
    }
}

impl Backups<'_> {
    fn say(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }

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
    fn scratch(
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
    fn helper(&self, label: &str, image: &str, mounts: Vec<Mount>) -> Result<Scratch<'_>, Error> {
        let sleep = ["sleep", "86400"].map(str::to_owned).to_vec();
        self.scratch(label, "helper", image, Vec::new(), Some(sleep), mounts)
    }

    /// Wait until `check` passes in `container` (a scratch database server started).
    fn wait_for(&self, container: &str, check: &[&str], what: &str) -> Result<(), String> {
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
    fn run_script(
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

    /// Stream `component`'s dump into an upload to the repository.
    fn dump(
        &self,
        label: &str,
        component: &Component,
        upload: &mut restic::Upload<'_>,
    ) -> Result<(u64, Measured), String> {
        let input = upload.input();
        match component.kind {
            Kind::Postgres => {
                let work = format!("/tmp/nua-backup-{}", nonce());
                let argv = methods::sh(&methods::postgres_dump(), &[&work]);
                let mut tee = verify::Tee::new(input, |mut r| {
                    std::io::copy(&mut r, &mut std::io::sink()).map(|_| ())
                });
                let status =
                    self.engine
                        .exec_stream(&component.container, &exec(argv), None, &mut tee);
                let (_, bytes, _) = tee.finish();
                let counts = self.run_script(
                    &component.container,
                    methods::sh(&methods::read_and_clear(), &[&work]),
                    None,
                );
                let status = status.map_err(|e| e.to_string())?;
                if status.exit_code != 0 {
                    return Err(format!(
                        "pg_dump in `{}` failed with exit code {}: {}",
                        component.container,
                        status.exit_code,
                        tail(&status.stderr)
                    ));
                }
                let counts = methods::parse_counts(&String::from_utf8_lossy(&counts?))?;
                Ok((bytes, Measured::Counts(counts)))
            }
            Kind::Mariadb => {
                let argv = methods::sh(&methods::mariadb_dump(), &[]);
                let mut tee = verify::Tee::new(input, |r| verify::SqlRows::new().read(r));
                let status =
                    self.engine
                        .exec_stream(&component.container, &exec(argv), None, &mut tee);
                let (_, bytes, counts) = tee.finish();
                let status = status.map_err(|e| e.to_string())?;
                if status.exit_code != 0 {
                    return Err(format!(
                        "mariadb-dump in `{}` failed with exit code {}: {}",
                        component.container,
                        status.exit_code,
                        tail(&status.stderr)
                    ));
                }
                let counts = counts.map_err(|e| format!("the dump could not be read: {e}"))?;
                Ok((bytes, Measured::Counts(counts)))
            }
            Kind::Redis | Kind::Mongo => {
                let script = if component.kind == Kind::Redis {
                    methods::redis_dump()
                } else {
                    methods::mongo_dump()
                };
                let mut counter = Counter {
                    inner: input,
                    bytes: 0,
                };
                let status = self
                    .engine
                    .exec_stream(
                        &component.container,
                        &exec(methods::sh(&script, &[])),
                        None,
                        &mut counter,
                    )
                    .map_err(|e| e.to_string())?;
                if status.exit_code != 0 {
                    return Err(format!(
                        "the dump in `{}` failed with exit code {}: {}",
                        component.container,
                        status.exit_code,
                        tail(&status.stderr)
                    ));
                }
                Ok((counter.bytes, Measured::Later))
            }
            Kind::Volume => {
                let volume = component.volume.clone().unwrap_or_default();
                let helper = self
                    .helper(
                        label,
                        &component.image,
                        vec![Mount::Volume {
                            name: volume.clone(),
                            target: "/volume".to_owned(),
                            read_only: true,
                        }],
                    )
                    .map_err(|e| e.to_string())?;
                let argv = methods::sh(&methods::volume_dump(), &["/volume"]);
                let mut tee = verify::Tee::new(input, verify::tree_of);
                let status = self
                    .engine
                    .exec_stream(&helper.name, &exec(argv), None, &mut tee);
                let (_, bytes, tree) = tee.finish();
                let status = status.map_err(|e| e.to_string())?;
                if status.exit_code != 0 {
                    return Err(format!(
                        "tar of the volume `{volume}` failed with exit code {}: {}",
                        status.exit_code,
                        tail(&status.stderr)
                    ));
                }
                let tree = tree.map_err(|e| format!("the tar stream could not be read: {e}"))?;
                Ok((bytes, Measured::Tree(tree)))
            }
        }
    }

    /// Read `snapshot` back into a scratch container of the component's image and compare
    /// it with what was measured; a summary of what matched.
    fn verify(
        &self,
        label: &str,
        component: &Component,
        snapshot: &str,
        measured: &Measured,
        bytes: u64,
    ) -> Result<String, String> {
        let file = filename(component);
        // Feed the stored dump to `consume` (restic reads it back from the repository).
        let download = |consume: &mut Consumer<'_>| -> Result<Vec<u8>, String> {
            let mut result = Err("restic gave nothing".to_owned());
            self.repository
                .download(snapshot, &file, &mut |reader| {
                    result = consume(reader);
                    Ok(())
                })
                .map_err(|e| e.to_string())?;
            result
        };
        match (component.kind, measured) {
            (Kind::Postgres, Measured::Counts(dumped)) => {
                let names = self.env_of(&component.container, &["POSTGRES_USER", "POSTGRES_DB"])?;
                let env = vec![
                    format!("POSTGRES_USER={}", names[0]),
                    format!("POSTGRES_DB={}", names[1]),
                    format!("POSTGRES_PASSWORD={}", nonce()),
                ];
                let scratch = self
                    .scratch(label, "verify", &component.image, env, None, Vec::new())
                    .map_err(|e| e.to_string())?;
                self.wait_for(
                    &scratch.name,
                    &["pg_isready", "-q", "-h", "127.0.0.1"],
                    "PostgreSQL",
                )?;
                download(&mut |reader| {
                    self.run_script(
                        &scratch.name,
                        methods::sh(&methods::postgres_load_scratch(), &[]),
                        Some((reader, bytes)),
                    )
                    .map_err(|e| format!("pg_restore into a scratch server failed: {e}"))
                })?;
                let restored = self.run_script(
                    &scratch.name,
                    methods::sh(&methods::postgres_counts(), &[]),
                    None,
                )?;
                compare_counts(dumped, &String::from_utf8_lossy(&restored))
            }
            (Kind::Mariadb, Measured::Counts(dumped)) => {
                let names = self.env_of(
                    &component.container,
                    &["MARIADB_DATABASE", "MYSQL_DATABASE"],
                )?;
                let database = if names[0].is_empty() {
                    &names[1]
                } else {
                    &names[0]
                };
                let env = vec![
                    format!("MARIADB_DATABASE={database}"),
                    format!("MARIADB_ROOT_PASSWORD={}", nonce()),
                ];
                let scratch = self
                    .scratch(label, "verify", &component.image, env, None, Vec::new())
                    .map_err(|e| e.to_string())?;
                self.wait_for(
                    &scratch.name,
                    &methods::sh(
                        "MYSQL_PWD=\"$MARIADB_ROOT_PASSWORD\" mariadb-admin --user=root ping --silent -h 127.0.0.1",
                        &[],
                    )
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
                    "MariaDB",
                )?;
                download(&mut |reader| {
                    self.run_script(
                        &scratch.name,
                        methods::sh(&methods::mariadb_restore(), &[]),
                        Some((reader, bytes)),
                    )
                    .map_err(|e| format!("loading the dump into a scratch server failed: {e}"))
                })?;
                let restored = self.run_script(
                    &scratch.name,
                    methods::sh(&methods::mariadb_counts(), &[]),
                    None,
                )?;
                compare_counts(dumped, &String::from_utf8_lossy(&restored))
            }
            (Kind::Redis, _) => {
                let helper = self
                    .helper(label, &component.image, Vec::new())
                    .map_err(|e| e.to_string())?;
                // The keys the file holds, then the keys a server loading it has.
                let script = "set -eu\nmkdir -p /tmp/nua-verify\ncat >/tmp/nua-verify/dump.rdb\n\
                              redis-check-rdb /tmp/nua-verify/dump.rdb | tr -d '\\r' | \
                              sed -n 's/.*\\[info\\] \\([0-9]*\\) keys read.*/\\1/p' | tail -n 1";
                let keys = download(&mut |reader| {
                    self.run_script(
                        &helper.name,
                        methods::sh(script, &[]),
                        Some((reader, bytes)),
                    )
                })?;
                let keys = String::from_utf8_lossy(&keys).trim().to_owned();
                let start = "set -eu\nredis-server --port 6390 --bind 127.0.0.1 --dir /tmp/nua-verify \
                             --dbfilename dump.rdb --daemonize yes --save '' --appendonly no >/dev/null";
                self.run_script(&helper.name, methods::sh(start, &[]), None)?;
                self.wait_for(&helper.name, &["redis-cli", "-p", "6390", "ping"], "Redis")?;
                let count = "redis-cli -p 6390 INFO keyspace | tr -d '\\r' | \
                             sed -n 's/^db[0-9]*:keys=\\([0-9]*\\).*/\\1/p' | \
                             awk '{ n += $1 } END { print n + 0 }'";
                let loaded = self.run_script(&helper.name, methods::sh(count, &[]), None)?;
                let loaded = String::from_utf8_lossy(&loaded).trim().to_owned();
                if keys.is_empty() || keys != loaded {
                    return Err(format!(
                        "the RDB file holds {} keys, a server loading it has {loaded}",
                        if keys.is_empty() {
                            "an unknown number of"
                        } else {
                            &keys
                        }
                    ));
                }
                Ok(format!("{keys} keys"))
            }
            (Kind::Mongo, _) => {
                let scratch = self
                    .scratch(
                        label,
                        "verify",
                        &component.image,
                        Vec::new(),
                        None,
                        Vec::new(),
                    )
                    .map_err(|e| e.to_string())?;
                self.wait_for(
                    &scratch.name,
                    &["mongosh", "--quiet", "--eval", "db.runCommand({ ping: 1 })"],
                    "MongoDB",
                )?;
                download(&mut |reader| {
                    self.run_script(
                        &scratch.name,
                        methods::sh(&methods::mongo_restore(), &[]),
                        Some((reader, bytes)),
                    )
                })?;
                Ok("restored without error (collections not compared)".to_owned())
            }
            (Kind::Volume, Measured::Tree(dumped)) => {
                let helper = self
                    .helper(label, &component.image, Vec::new())
                    .map_err(|e| e.to_string())?;
                download(&mut |reader| {
                    self.run_script(
                        &helper.name,
                        methods::sh(
                            &format!("mkdir -p /tmp/nua-verify\n{}", methods::volume_restore()),
                            &["/tmp/nua-verify"],
                        ),
                        Some((reader, bytes)),
                    )
                    .map_err(|e| format!("unpacking into a scratch folder failed: {e}"))
                })?;
                let mut tree = Vec::new();
                let status = self
                    .engine
                    .exec_stream(
                        &helper.name,
                        &exec(methods::sh(&methods::volume_dump(), &["/tmp/nua-verify"])),
                        None,
                        &mut tree,
                    )
                    .map_err(|e| e.to_string())?;
                if status.exit_code != 0 {
                    return Err(format!(
                        "reading the scratch folder failed: {}",
                        tail(&status.stderr)
                    ));
                }
                let restored = verify::tree_of(&tree[..]).map_err(|e| e.to_string())?;
                let differences = verify::tree_differences(dumped, &restored, 5);
                if !differences.is_empty() {
                    return Err(differences.join("; "));
                }
                Ok(tree_summary(dumped))
            }
            _ => Err("nothing was measured of the dump".to_owned()),
        }
    }

    /// Values of the container's environment variables (empty when unset).
    fn env_of(&self, container: &str, names: &[&str]) -> Result<Vec<String>, String> {
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

    /// Back up `components` of `desired`, verify each, and record the outcome in `state`
    /// (the backup's id is returned with it).
    pub fn back_up(
        &self,
        state: &mut crate::state::State,
        desired: &Desired,
        generation: u64,
        components: &[Component],
        reason: &str,
    ) -> Result<(u64, Vec<Part>, bool), Error> {
        let label = &desired.label;
        self.repository.ensure()?;
        self.clean_scratch(label);
        let id = state.begin_backup(label, generation, reason)?;
        let mut parts = Vec::new();
        for component in components {
            let part = self.component(label, id, generation, component);
            match &part.error {
                None => self.say(&format!(
                    "backup {id} of {label}: {} verified ({}, {} bytes)",
                    component.name,
                    part.verified.as_deref().unwrap_or_default(),
                    part.bytes
                )),
                Some(error) => self.say(&format!(
                    "error: backup {id} of {label}: {} failed: {error}",
                    component.name
                )),
            }
            parts.push(part);
        }
        let ok = parts.iter().all(|p| p.error.is_none());
        let error = parts
            .iter()
            .filter_map(|p| p.error.as_ref().map(|e| format!("{}: {e}", p.component)))
            .collect::<Vec<_>>()
            .join("; ");
        state.finish_backup(
            id,
            ok,
            (!ok).then_some(error.as_str()),
            &serde_json::to_value(&parts).unwrap_or_default(),
        )?;
        Ok((id, parts, ok))
    }

    /// Apply `keep` to the verified backups of `label`: the snapshots of those it does not
    /// keep, and of failed backups older than the newest kept, are forgotten and the
    /// repository pruned. The newest backup taken before an upgrade is always kept (a
    /// rollback with data needs it). The ids forgotten.
    pub fn retain(
        &self,
        state: &mut crate::state::State,
        label: &str,
        keep: schedule::Keep,
    ) -> Result<Vec<u64>, Error> {
        let all = state.backups(Some(label))?;
        let verified: Vec<(u64, i64)> = all
            .iter()
            .filter(|b| b.status == "verified")
            .map(|b| (b.id, b.started as i64))
            .collect();
        let mut kept = keep.kept(&verified);
        if let Some(upgrade) = all
            .iter()
            .rev()
            .find(|b| b.status == "verified" && b.reason == "upgrade")
        {
            kept.insert(upgrade.id);
        }
        let oldest_kept = all
            .iter()
            .filter(|b| kept.contains(&b.id))
            .map(|b| b.id)
            .min()
            .unwrap_or(u64::MAX);
        let dropped: Vec<&crate::state::Backup> = all
            .iter()
            .filter(|b| match b.status.as_str() {
                "verified" => !kept.contains(&b.id),
                "failed" => b.id < oldest_kept,
                _ => false,
            })
            .collect();
        let snapshots: Vec<String> = dropped
            .iter()
            .flat_map(|b| {
                serde_json::from_value::<Vec<Part>>(b.components.clone()).unwrap_or_default()
            })
            .filter_map(|p| p.snapshot)
            .collect();
        self.repository.forget(&snapshots)?;
        let ids: Vec<u64> = dropped.iter().map(|b| b.id).collect();
        for id in &ids {
            state.forget_backup(*id)?;
        }
        Ok(ids)
    }

    /// One component: dump into the repository, then verify.
    fn component(&self, label: &str, id: u64, generation: u64, component: &Component) -> Part {
        let mut part = Part {
            component: component.name.clone(),
            kind: component.kind,
            snapshot: None,
            bytes: 0,
            added: 0,
            verified: None,
            error: None,
            dump_ms: 0,
            verify_ms: 0,
        };
        let tags = [
            "nua".to_owned(),
            format!("instance={label}"),
            format!("backup={id}"),
            format!("generation={generation}"),
            format!("component={}", component.name),
            format!("kind={}", component.kind.as_str()),
        ];
        let started = Instant::now();
        let mut upload = match self.repository.upload(&filename(component), &tags) {
            Ok(upload) => upload,
            Err(e) => {
                part.error = Some(e.to_string());
                return part;
            }
        };
        let dumped = self.dump(label, component, &mut upload);
        let measured = match dumped {
            Ok((bytes, measured)) => {
                part.bytes = bytes;
                measured
            }
            Err(error) => {
                // restic never saw the end of the stream: it makes no snapshot. When restic
                // broke the stream itself, its reason is the one that counts.
                part.error = Some(match upload.abort() {
                    Some(reason) => reason.to_string(),
                    None => error,
                });
                return part;
            }
        };
        match upload.commit() {
            Ok(summary) => {
                part.snapshot = Some(summary.snapshot_id);
                part.added = summary.data_added;
            }
            Err(e) => {
                part.error = Some(e.to_string());
                return part;
            }
        }
        part.dump_ms = started.elapsed().as_millis() as u64;
        let started = Instant::now();
        let snapshot = part.snapshot.clone().unwrap_or_default();
        match self.verify(label, component, &snapshot, &measured, part.bytes) {
            Ok(summary) => part.verified = Some(summary),
            Err(error) => {
                part.error = Some(format!("verification failed: {error}"));
                // A snapshot that does not restore is not kept as if it might.
                if self.repository.forget_only(&[snapshot]).is_ok() {
                    part.snapshot = None;
                }
            }
        }
        part.verify_ms = started.elapsed().as_millis() as u64;
        part
    }

    /// Put `component` back from `snapshot` into the instance (its app stopped by the
    /// caller).
    pub fn restore_component(
        &self,
        label: &str,
        component: &Component,
        snapshot: &str,
        bytes: u64,
    ) -> Result<(), String> {
        let file = filename(component);
        let mut outcome = Err("restic gave nothing".to_owned());
        let into = |reader: &mut (dyn std::io::Read + Send)| -> Result<Vec<u8>, String> {
            match component.kind {
                Kind::Postgres => self.run_script(
                    &component.container,
                    methods::sh(&methods::postgres_restore(), &[]),
                    Some((reader, bytes)),
                ),
                Kind::Mariadb => self.run_script(
                    &component.container,
                    methods::sh(&methods::mariadb_restore(), &[]),
                    Some((reader, bytes)),
                ),
                Kind::Mongo => self.run_script(
                    &component.container,
                    methods::sh(&methods::mongo_restore(), &[]),
                    Some((reader, bytes)),
                ),
                Kind::Redis => {
                    self.run_script(
                        &component.container,
                        methods::sh(&methods::redis_restore(), &[]),
                        Some((reader, bytes)),
                    )?;
                    self.restart_redis(&component.container)?;
                    Ok(Vec::new())
                }
                Kind::Volume => {
                    let helper = self
                        .helper(
                            label,
                            &component.image,
                            vec![Mount::Volume {
                                name: component.volume.clone().unwrap_or_default(),
                                target: "/volume".to_owned(),
                                read_only: false,
                            }],
                        )
                        .map_err(|e| e.to_string())?;
                    self.run_script(
                        &helper.name,
                        methods::sh(&methods::volume_restore(), &["/volume"]),
                        Some((reader, bytes)),
                    )
                }
            }
        };
        self.repository
            .download(snapshot, &file, &mut |reader| {
                outcome = into(reader).map(|_| ());
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        outcome
    }
}

impl Backups<'_> {
    /// Stop the Redis server of `container` without saving, so that it loads the file just
    /// put in place, and wait for it to answer again (Docker restarts it under its restart
    /// policy; Nua starts it when Docker does not).
    fn restart_redis(&self, container: &str) -> Result<(), String> {
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

/// The name of a component's stream in the repository.
pub fn filename(component: &Component) -> String {
    format!("{}.{}", component.name, component.kind.extension())
}

fn compare_counts(dumped: &BTreeMap<String, u64>, restored: &str) -> Result<String, String> {
    let restored = methods::parse_counts(restored)?;
    let differences = verify::count_differences(dumped, &restored);
    if !differences.is_empty() {
        return Err(differences.join("; "));
    }
    let rows: u64 = dumped.values().sum();
    Ok(format!("{} tables, {rows} rows", dumped.len()))
}

fn tree_summary(tree: &verify::Tree) -> String {
    let count = |kind: &str| tree.values().filter(|e| e.kind == kind).count();
    let bytes: u64 = tree.values().map(|e| e.size).sum();
    format!(
        "{} files, {} folders, {} symlinks, {bytes} bytes",
        count("file"),
        count("dir"),
        count("symlink")
    )
}

/// Counts what passes on to `inner`.
struct Counter<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests;
