//! A root: lower layers from the cache, one upper directory, and what runs on it.

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::{Error, IoContext, Result};
use super::mounts::MountPlan;
use super::probe::OVERLAY_OPTIONS;
use super::process::{self, Plan};
use super::sys::{self, cstring};
use super::{commit, unpack, userns, Command, Network, Sandbox, Status, Stream, DEFAULT_PATH};
use nua_oci::{self as oci, LayerOptions};

/// An isolated root: lower layers plus this root's own upper directory. Dropping it removes
/// its upper and work directories.
#[derive(Debug)]
pub struct Root {
    sandbox: Sandbox,
    /// `upper/`, `work/`, `merged/`, `scaffold/` and `l/0..N` (links to the lowers).
    dir: PathBuf,
    /// The lower directories, bottom first.
    lowers: Vec<PathBuf>,
    removed: bool,
}

impl Root {
    pub(crate) fn create(sandbox: Sandbox, lowers: Vec<PathBuf>) -> Result<Root> {
        let roots = sandbox.inner.cache_dir.join("roots");
        let dir = tempfile::Builder::new()
            .prefix("root-")
            .tempdir_in(&roots)
            .at(&roots)?
            .keep();
        let root = Root {
            sandbox,
            dir,
            lowers,
            removed: false,
        };
        for sub in ["upper", "work", "merged", "l"] {
            let path = root.dir.join(sub);
            fs::DirBuilder::new().mode(0o755).create(&path).at(&path)?;
            // The upper directory gives `/` its mode: 0755 whatever the caller's umask.
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).at(&path)?;
        }
        for (i, lower) in root.lowers.iter().enumerate() {
            let link = root.dir.join("l").join(i.to_string());
            std::os::unix::fs::symlink(lower, &link).at(&link)?;
        }
        Ok(root)
    }

    /// `lowerdir=` value, relative to the root's directory, topmost first.
    fn lowerdir(&self, top: &str) -> String {
        let mut dirs = vec![top.to_owned()];
        dirs.extend((0..self.lowers.len()).rev().map(|i| format!("l/{i}")));
        dirs.join(":")
    }

    /// Run one command in fresh namespaces over the lowers and this root's upper directory.
    /// Successive runs see each other's changes.
    pub fn run(&mut self, cmd: &Command, on_line: &mut dyn FnMut(Stream, &str)) -> Result<Status> {
        let plan = self.plan(cmd)?;
        process::run(&plan, &self.sandbox.inner.mapping, cmd.timeout, on_line)
    }

    fn plan(&self, cmd: &Command) -> Result<Plan> {
        if cmd.argv.is_empty() {
            return Err(Error::Command("empty argv".into()));
        }
        if !cmd.cwd.starts_with('/') {
            return Err(Error::Command(format!(
                "working directory `{}` must be absolute",
                cmd.cwd
            )));
        }
        let (binds, wanted) = self.binds(cmd)?;
        self.scaffold(&wanted)?;
        let c = |s: &str, what: &str| {
            cstring(s).ok_or_else(|| Error::Command(format!("NUL byte in {what}")))
        };
        let mapping = &self.sandbox.inner.mapping;
        Ok(Plan {
            root_dir: c(&self.dir.to_string_lossy(), "the cache path")?,
            mounts: MountPlan {
                overlay: c(
                    &format!(
                        "lowerdir={},upperdir=upper,workdir=work,{OVERLAY_OPTIONS}",
                        self.lowerdir("scaffold")
                    ),
                    "paths",
                )?,
                binds,
                tty_gid: mapping.maps(5).then_some(5),
            },
            hostname: c(&cmd.hostname, "the hostname")?,
            net_none: cmd.network == Network::None,
            user: cmd.user,
            cwd: c(&cmd.cwd, "the working directory")?,
            argv: cmd
                .argv
                .iter()
                .map(|a| c(a, "argv"))
                .collect::<Result<_>>()?,
            env: cmd
                .env
                .iter()
                .map(|(k, v)| c(&format!("{k}={v}"), "env"))
                .collect::<Result<_>>()?,
            exec: exec_paths(cmd)
                .iter()
                .map(|p| c(p, "argv[0]"))
                .collect::<Result<_>>()?,
        })
    }

    /// The bind mounts of `cmd` (the host's `/etc/resolv.conf` first), checked, and every
    /// mount point the scaffold must have: (relative target, is a folder).
    #[allow(clippy::type_complexity)]
    fn binds(
        &self,
        cmd: &Command,
    ) -> Result<(
        Vec<(std::ffi::CString, Vec<u8>, bool, bool)>,
        Vec<(String, bool)>,
    )> {
        let bad = |what: String| Error::Command(what);
        let mut wanted: Vec<(String, bool)> = ["proc", "dev", "tmp"]
            .iter()
            .map(|d| (d.to_string(), true))
            .collect();
        let resolv = Path::new("/etc/resolv.conf");
        let mut binds = Vec::new();
        let host_binds = resolv
            .exists()
            .then(|| (resolv.to_owned(), "/etc/resolv.conf".to_owned(), false))
            .into_iter()
            .chain(
                cmd.mounts
                    .iter()
                    .map(|b| (b.source.clone(), b.target.clone(), b.writable)),
            );
        for (source, target, writable) in host_binds {
            let rel = target
                .strip_prefix('/')
                .and_then(|t| oci::layer::normalize(t.as_bytes(), false).ok().flatten())
                .ok_or_else(|| {
                    bad(format!(
                        "bind target `{target}` must be absolute, without `..`"
                    ))
                })?;
            let rel = String::from_utf8(rel).expect("normalized from a str");
            // Relative to the caller's folder, not to where the namespace's pid 1 runs.
            let source = std::path::absolute(&source).at(&source)?;
            let is_dir = fs::metadata(&source).at(&source)?.is_dir();
            self.check_parents(&rel, &target)?;
            let source = cstring(source.clone().into_os_string().into_encoded_bytes())
                .ok_or_else(|| bad("NUL byte in a bind source".into()))?;
            binds.push((source, rel.clone().into_bytes(), is_dir, writable));
            wanted.push((rel, is_dir));
        }
        Ok((binds, wanted))
    }

    /// A fresh `scaffold` folder, the top lower layer, with the mount points of `wanted`.
    fn scaffold(&self, wanted: &[(String, bool)]) -> Result<()> {
        let scaffold = self.dir.join("scaffold");
        if scaffold.exists() {
            fs::remove_dir_all(&scaffold).at(&scaffold)?;
        }
        for (rel, is_dir) in wanted {
            let path = scaffold.join(rel);
            let parent = if *is_dir {
                path.as_path()
            } else {
                path.parent().expect("has a parent")
            };
            create_dirs_755(&self.dir, parent)?;
            if !is_dir {
                fs::File::create(&path).at(&path)?;
            }
        }
        Ok(())
    }

    /// Refuse a bind target whose parent is a symlink or a file in the image: the scaffold
    /// directory would hide it (e.g. `/lib` → `usr/lib` on merged-/usr systems).
    fn check_parents(&self, rel: &str, target: &str) -> Result<()> {
        let layers: Vec<PathBuf> = std::iter::once(self.dir.join("upper"))
            .chain(self.lowers.iter().rev().cloned())
            .collect();
        let comps: Vec<&str> = rel.split('/').collect();
        for n in 1..comps.len() {
            let prefix = comps[..n].join("/");
            let found = layers
                .iter()
                .find_map(|l| fs::symlink_metadata(l.join(&prefix)).ok());
            match found {
                Some(md) if md.file_type().is_char_device() => return Ok(()), // whited out
                Some(md) if !md.is_dir() => {
                    return Err(Error::Command(format!(
                        "bind target `{target}` goes through `/{prefix}`, which is not a directory \
                         in the image (a symlink?): bind to the resolved path instead"
                    )))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Read a file of the merged view (upper, then lowers, whiteouts honoured; symlinks
    /// resolved inside the root); `Ok(None)` when absent.
    pub fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let rel = path.trim_start_matches('/').to_owned();
        let task = format!("reading `{path}` from the root");
        self.inspect(&task, move |merged| merged.read(&rel))
    }

    /// Run `look` on the merged view, mounted read-only once for all it reads (one user
    /// namespace, no process in the root: the image needs no shell); its result.
    pub fn inspect<T, F>(&self, task: &str, look: F) -> Result<T>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
        F: FnOnce(&Merged) -> Result<T>,
    {
        let (dir, lowerdir) = (self.dir.clone(), self.lowerdir("upper"));
        userns::in_namespace(&self.sandbox.inner.mapping, task, move || {
            std::env::set_current_dir(&dir).at(&dir)?;
            let opts = cstring(format!("lowerdir={lowerdir},{OVERLAY_OPTIONS}"))
                .ok_or_else(|| Error::Command("NUL in paths".into()))?;
            sys::mount(
                Some(c"overlay"),
                c"merged",
                Some(c"overlay"),
                libc::MS_RDONLY,
                Some(&opts),
            )
            .map_err(|source| Error::Setup {
                step: "mounting the root read-only".into(),
                source,
            })?;
            let root = unpack::open_dir(libc::AT_FDCWD, c"merged").at(dir.join("merged"))?;
            look(&Merged { root })
        })
    }

    /// Turn what changed (the upper directory) into a layer of the store, keep it as that
    /// layer's unpacked folder, then remove the root. Mount points the sandbox made live in
    /// the scaffold, never in the layer.
    pub fn commit(self, opts: &LayerOptions) -> Result<oci::Layer> {
        self.commit_without(opts, &[])
    }

    /// [`Root::commit`], leaving out what changed at or below the paths of `leave_out`
    /// (absolute or relative to the root: caches and logs the steps' tools wrote). Nothing
    /// of theirs reaches the layer, not even a whiteout.
    pub fn commit_without(mut self, opts: &LayerOptions, leave_out: &[&str]) -> Result<oci::Layer> {
        let (upper, store, opts) = (
            self.dir.join("upper"),
            self.sandbox.inner.store.clone(),
            *opts,
        );
        let leave_out: Vec<String> = leave_out
            .iter()
            .map(|p| p.trim_matches('/').to_owned())
            .collect();
        let task = format!("committing `{}`", upper.display());
        let layer = {
            let (upper, leave_out) = (upper.clone(), leave_out.clone());
            userns::in_namespace(&self.sandbox.inner.mapping, &task, move || {
                commit::commit(&upper, &store, &opts, &leave_out)
            })?
        };
        // What the layer holds is here already: tidied into what unpacking it gives, the
        // upper directory becomes the layer's folder in the cache. Apart, so that nothing
        // going wrong there fails the commit: only a slower next step is lost.
        let dest = self
            .sandbox
            .inner
            .cache_dir
            .join("layers")
            .join(layer.diff_id.hex());
        if !dest.exists() {
            let task = format!("keeping `{}` as layer {}", upper.display(), layer.diff_id);
            let _ = userns::in_namespace(&self.sandbox.inner.mapping, &task, move || {
                if commit::into_unpacked(&upper, &opts, &leave_out)? {
                    // Another builder may have put the same layer there meanwhile: its copy
                    // stays (a folder is never renamed over one that is not empty).
                    let _ = fs::rename(&upper, &dest);
                }
                Ok(())
            });
        }
        // The layer is written: failing to clean up is not failing to commit (Drop tries
        // again, and the next `Sandbox::new` collects what is left).
        self.removed = self.sandbox.remove_tree(&self.dir).is_ok();
        Ok(layer)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.sandbox.remove_tree(&self.dir);
        }
    }
}

/// A root's merged view, read-only, as [`Root::inspect`] gives it: paths are relative to
/// the root, and symlinks resolve inside it.
pub struct Merged {
    root: OwnedFd,
}

impl Merged {
    /// The content of a file; `None` when absent or not a file.
    pub fn read(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        open_in_root(&self.root, rel)
    }

    /// The names in a folder, sorted bytewise (as the C locale's `ls` and globs do); `None`
    /// when it is absent or not a folder.
    pub fn list(&self, rel: &str) -> Result<Option<Vec<String>>> {
        let Some(dir) = open_at(&self.root, rel, libc::O_DIRECTORY)? else {
            return Ok(None);
        };
        let path = format!("/proc/self/fd/{}", dir.as_raw_fd());
        let mut names: Vec<String> = fs::read_dir(&path)
            .at(rel)?
            .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<_>>()
            .at(rel)?;
        names.sort();
        Ok(Some(names))
    }
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Read `rel` below `root` with `openat2(RESOLVE_IN_ROOT)`: symlinks resolve inside it.
/// `None` when it is absent or a folder.
fn open_in_root(root: &OwnedFd, rel: &str) -> Result<Option<Vec<u8>>> {
    let Some(fd) = open_at(root, rel, 0)? else {
        return Ok(None);
    };
    let mut file = fs::File::from(fd);
    let mut out = Vec::new();
    match std::io::Read::read_to_end(&mut file, &mut out) {
        Ok(_) => Ok(Some(out)),
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => Ok(None),
        Err(e) => Err(e).at(rel),
    }
}

/// Open `rel` below `root` read-only, with `flags` added (`O_DIRECTORY`), resolving inside
/// it; `None` when absent (or, with `O_DIRECTORY`, not a folder).
fn open_at(root: &OwnedFd, rel: &str, flags: i32) -> Result<Option<OwnedFd>> {
    const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
    const RESOLVE_IN_ROOT: u64 = 0x10;
    let name = cstring(if rel.is_empty() { "." } else { rel })
        .ok_or_else(|| Error::Command("NUL in path".into()))?;
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_CLOEXEC | flags) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // openat2 answers EAGAIN when a rename or mount anywhere on the machine raced the
    // lookup (it cannot then vouch for `..` staying inside); openat2(2) says to try again.
    let mut attempts = 0;
    let fd = loop {
        // SAFETY: valid descriptor, NUL-terminated name, `how` matches `struct open_how`.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root.as_raw_fd(),
                name.as_ptr(),
                &how,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            break fd;
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) if attempts < 1000 => attempts += 1,
            Some(libc::ENOENT | libc::ENOTDIR) => return Ok(None),
            _ => return Err(e).at(rel),
        }
    };
    // SAFETY: a fresh descriptor owned by nobody else.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
}

/// Create `dir` and its missing parents below `base`, each 0755 whatever the umask: the
/// scaffold is the topmost lower, so its folders (`/etc` for `resolv.conf`) give their mode
/// to the merged root and to anything copied up into a layer.
fn create_dirs_755(base: &Path, dir: &Path) -> Result<()> {
    let mut path = base.to_path_buf();
    for part in dir.strip_prefix(base).unwrap_or(dir).components() {
        path.push(part);
        if !path.is_dir() {
            fs::create_dir(&path).at(&path)?;
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).at(&path)?;
    }
    Ok(())
}

/// Where `cmd`'s program may be: itself when it has a `/`, else in each folder of the
/// command's `PATH` (or the default one), in order.
fn exec_paths(cmd: &Command) -> Vec<String> {
    let path_var = cmd
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v);
    let argv0 = &cmd.argv[0];
    if argv0.contains('/') {
        vec![argv0.clone()]
    } else {
        path_var
            .split(':')
            .filter(|d| !d.is_empty())
            .map(|d| format!("{d}/{argv0}"))
            .collect()
    }
}
