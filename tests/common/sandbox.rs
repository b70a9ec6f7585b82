//! Helpers of the sandbox tests (`tests/sandbox.rs`, `tests/sandbox_faults.rs`): one store,
//! sandbox and Debian base layer per test binary and user, shell runs, layer listings, the
//! processes left on the host, and re-running the test binary as an unprivileged user.

use std::path::{Path, PathBuf};
use std::process::Command as Proc;
use std::sync::OnceLock;

use nua_oci::{BlobStore, Compression, Layer, LayerOptions, LayerWriter};
use nua_sandbox::{Command, Root, Sandbox, Status, Stream};

/// Set in a test binary re-run by [`rerun_as`], so the outer tests do not recurse.
pub const INNER: &str = "NUA_SANDBOX_TEST_INNER";
/// The base root filesystem tarball, when the user cannot read the cached one.
const ROOTFS: &str = "NUA_SANDBOX_TEST_ROOTFS";
/// Made by `scripts/test-env.sh` with subordinate id ranges.
pub const ROOTLESS_USER: &str = "nua-rootless";
/// Made by `scripts/test-env.sh` without subordinate id ranges (the single-id fallback).
pub const SINGLE_ID_USER: &str = "nua-single";

pub struct Env {
    pub store: BlobStore,
    pub sandbox: Sandbox,
    pub base: Layer,
    pub dir: PathBuf,
}

/// One store, sandbox and base layer per test binary and user (unpacked once, reused).
pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let rootfs = match std::env::var_os(ROOTFS) {
            Some(p) => PathBuf::from(p),
            None => super::test_env().to_owned(),
        };
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        let dir = std::env::temp_dir().join(format!("nua-sandbox-tests-{uid}"));
        let store = BlobStore::open(dir.join("store")).unwrap();
        let opts = LayerOptions {
            compression: Compression::Gzip(1),
            source_date_epoch: 0,
        };
        let mut writer = LayerWriter::new(&store, opts).unwrap();
        writer
            .append_tar_stream(std::fs::File::open(&rootfs).unwrap())
            .unwrap();
        let base = writer.finish().unwrap();
        let sandbox = Sandbox::new(&dir.join("sandbox"), &store).unwrap();
        // Unpack the base once, before tests run concurrently.
        drop(sandbox.root(std::slice::from_ref(&base)).unwrap());
        Env {
            store,
            sandbox,
            base,
            dir,
        }
    })
}

/// A fresh root over the base layer.
pub fn root() -> Root {
    env()
        .sandbox
        .root(std::slice::from_ref(&env().base))
        .unwrap()
}

/// Run a command; its status and output lines.
pub fn sh(root: &mut Root, cmd: Command) -> (Status, Vec<(Stream, String)>) {
    let mut lines = Vec::new();
    let status = root
        .run(&cmd, &mut |s, l| lines.push((s, l.to_owned())))
        .unwrap();
    (status, lines)
}

pub fn stdout(lines: &[(Stream, String)]) -> Vec<&str> {
    lines
        .iter()
        .filter(|(s, _)| *s == Stream::Stdout)
        .map(|(_, l)| l.as_str())
        .collect()
}

pub fn set_readable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = if path.is_dir() { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Entry names of a layer blob, in order (type prefix for non-files).
pub fn listing(layer: &Layer) -> Vec<String> {
    let blob = env().store.open_blob(&layer.descriptor.digest).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            let kind = format!("{:?}", h.entry_type());
            format!(
                "{kind} {} {}:{}",
                e.path().unwrap().display(),
                h.uid().unwrap(),
                h.gid().unwrap()
            )
        })
        .collect()
}

/// Command lines (NULs as spaces) of the host's processes that contain `marker`.
pub fn processes_with(marker: &str) -> Vec<(libc::pid_t, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            Some((pid, String::from_utf8_lossy(&cmdline).replace('\0', " ")))
        })
        .filter(|(_, c)| c.contains(marker))
        .collect()
}

/// Whether this is the outer run as root (not a re-run as another user).
pub fn outer_root_run() -> bool {
    // SAFETY: getuid cannot fail.
    std::env::var_os(INNER).is_none() && unsafe { libc::getuid() } == 0
}

/// Re-run this test binary as `user` with `args` (test filters), with a copy of the base root
/// filesystem it can read; panics unless the run passes, returns its stdout.
/// How many tests this test binary holds, ignored ones too, but for `but`: what a rerun
/// with `--include-ignored --skip BUT` must report as passed.
pub fn tests_of_this_binary(but: &str) -> usize {
    let out = Proc::new(std::env::current_exe().unwrap())
        .args(["--list", "--include-ignored"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .filter(|name| !name.contains(but))
        .count()
}

pub fn rerun_as(user: &str, args: &[&str]) -> String {
    let rootfs = super::test_env();
    // The user cannot read root's cache: give it a copy of the base root filesystem.
    let copy = Path::new("/var/tmp/nua-sandbox-rootfs.tar");
    let stale = std::fs::metadata(copy).ok().map(|m| m.len())
        != std::fs::metadata(rootfs).ok().map(|m| m.len());
    if stale {
        // Copy then rename: another test binary may be reading the copy as `user`.
        let partial = copy.with_extension(format!("partial-{}", std::process::id()));
        std::fs::copy(rootfs, &partial).unwrap();
        std::fs::rename(&partial, copy).unwrap();
    }
    set_readable(copy);
    let exe = std::env::current_exe().unwrap();
    let out = super::run(
        Proc::new("setpriv")
            .args(["--reuid", user, "--regid", user, "--init-groups", "--"])
            .arg(&exe)
            .args(args)
            .env(INNER, "1")
            .env(ROOTFS, copy)
            .env("HOME", format!("/home/{user}"))
            .env_remove("TMPDIR")
            .current_dir("/"),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "as {user}:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}
