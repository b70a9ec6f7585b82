//! Running build steps rootless in an isolated root made of image layers, and turning what
//! they changed into a new layer.
//!
//! A [`Sandbox`] probes the machine once (user namespaces, overlayfs with `userxattr`,
//! `newuidmap` and subordinate ids: see [`Mapping`]) and keeps a cache of unpacked layers,
//! one directory per DiffID under `<cache_dir>/layers/`. A [`Root`] stacks some of those
//! as overlay lower directories under a fresh upper directory; [`Root::run`] runs a
//! [`Command`] in new user, mount, pid, ipc and uts namespaces (and network, with
//! [`Network::None`]) on that overlay, and [`Root::commit`] writes the upper directory as a
//! layer. It does not pull images, resolve packages or print anything.
//!
//! Processes (details in `process.rs`): the caller's thread forks a child that unshares
//! the namespaces and waits while the parent writes its id maps; it forks pid 1 of the new
//! pid namespace, which mounts and `pivot_root`s and forks the command. Setup failures come
//! back as (step, errno) through a pipe. Any work on files that may belong to subordinate
//! ids (unpack, read, commit, delete) runs as a Rust closure inside a user namespace
//! (`userns.rs`). System calls go through `libc` directly: the code after `fork` must not
//! allocate needlessly or take locks, and the few calls needed (`unshare`, `mount`,
//! `open_tree`, `pivot_root`) are simplest to audit as written; `libc` was in the tree
//! already.
//!
//! Overlay is always mounted inside the namespace with `userxattr`, `index=off`,
//! `metacopy=off`, `redirect_dir=nofollow`, so the upper directory stays a plain diff whose
//! markers are `user.overlay.*`. Lower paths are short relative links (`l/0`, `l/1`, …) to
//! stay under the page-size limit of mount options with many layers. The mount points the
//! sandbox needs (`/proc`, `/dev`, `/tmp`, `/etc/resolv.conf`, bind targets) live in a
//! per-run "scaffold" directory stacked as the topmost lower, so they never reach the
//! upper directory nor a committed layer.

mod commit;
mod error;
mod idmap;
mod mounts;
mod probe;
mod process;
mod root;
mod sys;
mod touches;
mod unpack;
mod userns;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use error::{Error, Result};
pub use idmap::Mapping;
pub use root::{Merged, Root};
pub use touches::unpacked_touches;

use error::IoContext;
use nua_oci::{self as oci, BlobStore};

/// Roots and unpack folders untouched this long were abandoned by a killed build.
const ABANDONED_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The sandbox of one build: the probed id mapping and the cache of unpacked layers.
#[derive(Debug, Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cache_dir: PathBuf,
    store: BlobStore,
    mapping: Mapping,
    warnings: Vec<String>,
}

impl Sandbox {
    /// Probe the kernel and the id-mapping tools; `cache_dir` (e.g. `<cache>/sandbox`) holds
    /// unpacked layers and roots, `store` is the blob store layers are read from.
    pub fn new(cache_dir: &Path, store: &BlobStore) -> Result<Sandbox> {
        for dir in [cache_dir.join("layers"), cache_dir.join("roots")] {
            std::fs::create_dir_all(&dir).at(&dir)?;
        }
        let (mapping, warning) = idmap::detect();
        probe::check(&mapping, cache_dir)?;
        let sandbox = Sandbox {
            inner: Arc::new(Inner {
                cache_dir: cache_dir.to_owned(),
                store: store.clone(),
                mapping,
                warnings: warning.into_iter().collect(),
            }),
        };
        sandbox.collect_abandoned(ABANDONED_AFTER);
        Ok(sandbox)
    }

    /// Remove roots and half-unpacked layers that a killed build left behind: those not
    /// touched for `age` (no step runs that long). Their files may belong to subordinate
    /// ids, so they go through the namespace; what cannot be removed is left for next time.
    fn collect_abandoned(&self, age: Duration) {
        let dirs = [
            (self.inner.cache_dir.join("roots"), "root-"),
            (self.inner.cache_dir.join("layers"), ".unpack-"),
        ];
        for (dir, prefix) in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|e| e > age));
                if old && entry.file_name().to_string_lossy().starts_with(prefix) {
                    let _ = self.remove_tree(&entry.path());
                }
            }
        }
    }

    /// How ids are mapped into the sandbox.
    pub fn mapping(&self) -> &Mapping {
        &self.inner.mapping
    }

    /// What the caller should tell the user (e.g. the single-id fallback and its fix).
    pub fn warnings(&self) -> &[String] {
        &self.inner.warnings
    }

    /// A root made of `layers` (bottom first), each unpacked once per DiffID into the cache,
    /// with a fresh empty upper directory.
    pub fn root(&self, layers: &[oci::Layer]) -> Result<Root> {
        let lowers = layers
            .iter()
            .map(|layer| self.unpacked(layer))
            .collect::<Result<Vec<_>>>()?;
        Root::create(self.clone(), lowers)
    }

    /// Remove the unpacked layers whose DiffID (hex) `keep` does not want; how many went.
    /// A layer a running build is unpacking has a temporary name and is left alone.
    pub fn forget_unpacked(&self, keep: &dyn Fn(&str) -> bool) -> Result<u64> {
        let layers = self.inner.cache_dir.join("layers");
        let mut removed = 0;
        let read = match std::fs::read_dir(&layers) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e).at(&layers),
        };
        for entry in read {
            let entry = entry.at(&layers)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || keep(&name) {
                continue;
            }
            self.remove_tree(&entry.path())?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Create (when missing) the host folder `dir` and give it to `uid:gid` as seen inside
    /// the sandbox, so that a command running as that user can write through a
    /// [`Bind::writable`] of it (a package cache shared by builds). Only the folder itself
    /// changes owner; what is inside already belongs to that user.
    pub fn shared_dir(&self, dir: &Path, (uid, gid): (u32, u32)) -> Result<()> {
        std::fs::create_dir_all(dir).at(dir)?;
        let dir = dir.to_owned();
        let task = format!("preparing the shared folder `{}`", dir.display());
        let mapped = self.inner.mapping.maps(uid) && self.inner.mapping.maps(gid);
        userns::in_namespace(&self.inner.mapping, &task, move || {
            if !mapped {
                // Single-id mapping: only root exists inside; the folder is root's already.
                return Ok(());
            }
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).at(&dir)
        })
    }

    /// The directory of `layer` in the cache, unpacking it first when needed. Concurrent
    /// builders each unpack into their own temporary directory; the first rename wins.
    fn unpacked(&self, layer: &oci::Layer) -> Result<PathBuf> {
        let layers = self.inner.cache_dir.join("layers");
        let dest = layers.join(layer.diff_id.hex());
        if dest.is_dir() {
            return Ok(dest);
        }
        let tmp = tempfile::Builder::new()
            .prefix(".unpack-")
            .tempdir_in(&layers)
            .at(&layers)?
            .keep();
        let (store, layer_c, tmp_c, dest_c) = (
            self.inner.store.clone(),
            layer.clone(),
            tmp.clone(),
            dest.clone(),
        );
        let task = format!("unpacking layer {}", layer.descriptor.digest);
        let done = userns::in_namespace(&self.inner.mapping, &task, move || {
            let into = tmp_c.join("root");
            let result = unpack::unpack(&store, &layer_c, &into).and_then(|()| {
                match std::fs::rename(&into, &dest_c) {
                    Ok(()) => Ok(()),
                    // Another builder renamed the same DiffID into place first.
                    Err(_) if dest_c.is_dir() => Ok(()),
                    Err(e) => Err(e).at(&dest_c),
                }
            });
            let _ = std::fs::remove_dir_all(&tmp_c);
            result
        });
        if done.is_err() {
            let _ = self.remove_tree(&tmp);
        }
        done.map(|()| dest)
    }

    /// Remove a directory whose files may belong to subordinate ids.
    fn remove_tree(&self, dir: &Path) -> Result<()> {
        let dir = dir.to_owned();
        let task = format!("removing `{}`", dir.display());
        userns::in_namespace(
            &self.inner.mapping,
            &task,
            move || match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at(&dir),
                _ => Ok(()),
            },
        )
    }
}

/// One command to run in a [`Root`].
#[derive(Debug, Clone)]
pub struct Command {
    /// `argv[0]` is looked up in the `PATH` of `env` when it has no `/`.
    pub argv: Vec<String>,
    /// The whole environment: nothing is inherited from the host.
    pub env: Vec<(String, String)>,
    /// Working directory inside the root.
    pub cwd: String,
    /// uid:gid inside the root.
    pub user: (u32, u32),
    /// Binds of host paths; never captured in a layer.
    pub mounts: Vec<Bind>,
    pub network: Network,
    /// Kill the whole namespace after this long ([`Status::TimedOut`]).
    pub timeout: Option<Duration>,
    pub hostname: String,
}

impl Command {
    /// `argv` run as root in `/`, with no environment, the host's network and no timeout.
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Command {
        Command {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: "/".into(),
            user: (0, 0),
            mounts: Vec::new(),
            network: Network::Host,
            timeout: None,
            hostname: "nua-build".into(),
        }
    }

    /// A POSIX shell script run with `/bin/sh -c` and a default `PATH`.
    pub fn shell(script: &str) -> Command {
        let mut cmd = Command::new(["/bin/sh", "-c", script]);
        cmd.env.push(("PATH".into(), DEFAULT_PATH.into()));
        cmd
    }
}

/// `PATH` used to find `argv[0]` when the command's environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A bind of a host file or folder at `target` (absolute, inside the root), read-only
/// unless `writable` (a package cache shared by builds); never captured in a layer.
#[derive(Debug, Clone)]
pub struct Bind {
    pub source: PathBuf,
    pub target: String,
    pub writable: bool,
}

impl Bind {
    /// A read-only bind.
    pub fn read_only(source: impl Into<PathBuf>, target: impl Into<String>) -> Bind {
        Bind {
            source: source.into(),
            target: target.into(),
            writable: false,
        }
    }

    /// A bind the command can write through.
    pub fn writable(source: impl Into<PathBuf>, target: impl Into<String>) -> Bind {
        Bind {
            writable: true,
            ..Bind::read_only(source, target)
        }
    }
}

/// The network a command sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// The host's network (the default: package downloads need it).
    #[default]
    Host,
    /// A new network namespace with only `lo`.
    None,
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Exited(i32),
    Signaled(i32),
    TimedOut,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Exited(code) => write!(f, "exit code {code}"),
            Status::Signaled(signal) => write!(f, "killed by signal {signal}"),
            Status::TimedOut => f.write_str("timed out"),
        }
    }
}

impl Status {
    /// Exited with code 0.
    pub fn success(&self) -> bool {
        *self == Status::Exited(0)
    }
}
