//! Helpers shared by the integration tests: the real components they drive (Docker Engine,
//! skopeo, umoci) and the cached base root filesystem; `sandbox` holds those of the sandbox
//! tests, `registry`, `token`, `proxy` and `http` the registry servers and the fault proxy;
//! `archive` serves source archives (the `src-url` fixture); `docker` runs built images;
//! `watch` polls an app that `nua run --watch` reloads.
#![allow(dead_code)]

pub mod acme;
pub mod app_build;
pub mod archive;
pub mod backup;
pub mod deploy;
pub mod docker;
pub mod http;
pub mod proxy;
pub mod registry;
pub mod run;
pub mod sandbox;
pub mod token;
pub mod watch;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The crate root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture_app(name: &str) -> PathBuf {
    root().join("fixtures/apps").join(name)
}

/// Run `scripts/test-env.sh setup` once per test binary: installs what is missing, starts
/// dockerd when none answers, and makes the base root filesystem when it is not cached.
/// Returns the path of that root filesystem tarball.
pub fn test_env() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let script = root().join("scripts/test-env.sh");
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                ". {} setup >&2 && printf %s \"$NUA_TEST_BASE_ROOTFS\"",
                script.display()
            ))
            .output()
            .expect("run scripts/test-env.sh");
        assert!(
            out.status.success(),
            "scripts/test-env.sh setup failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap())
    })
}

/// Run a command, panic with its output when it fails, return its stdout.
#[track_caller]
pub fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[track_caller]
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

/// `nua-pack` as built by cargo for this test run.
pub fn nua_pack() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nua-pack"))
}

/// A cache folder for one test: the blob store starts empty so nothing depends on earlier runs.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("nua-test-")
        .tempdir()
        .unwrap()
}

/// Copy a folder recursively (files, folders, symlinks), for building a fixture from a second
/// location.
pub fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let ty = entry.file_type().unwrap();
        let to = dst.join(entry.file_name());
        if ty.is_dir() {
            copy_tree(&entry.path(), &to);
        } else if ty.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &to).unwrap();
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// A container started by a test, removed when dropped, whatever the test's outcome.
pub struct Container(pub String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

/// An image loaded by a test, removed when dropped.
pub struct LoadedImage(pub String);

impl Drop for LoadedImage {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

/// Unpack an image tarball into `dir/layout` with GNU tar; returns that folder.
pub fn unpack(tarball: &Path, dir: &Path) -> PathBuf {
    let layout = dir.join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xf")
            .arg(tarball)
            .arg("-C")
            .arg(&layout),
    );
    layout
}

/// `tarball` with one byte of its last layer flipped, packed again as `tampered.tar` in
/// `dir`; and that layer's digest (hex), which an error about it must name.
pub fn tamper_last_layer(tarball: &Path, dir: &Path) -> (PathBuf, String) {
    let layout = unpack(tarball, dir);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("manifest.json")).unwrap()).unwrap();
    let last = manifest[0]["Layers"].as_array().unwrap().last().unwrap();
    let last = last.as_str().unwrap().to_owned();
    let mut layer = std::fs::read(layout.join(&last)).unwrap();
    let middle = layer.len() / 2;
    layer[middle] ^= 0xff;
    std::fs::write(layout.join(&last), layer).unwrap();
    let tampered = dir.join("tampered.tar");
    run_ok(
        Command::new("tar")
            .arg("-cf")
            .arg(&tampered)
            .arg("-C")
            .arg(&layout)
            .arg("."),
    );
    let digest = last.trim_start_matches("blobs/sha256/").to_owned();
    (tampered, digest)
}

/// Every blob of the store under `cache` is named by its own digest: nothing corrupt or
/// half-written is visible there.
pub fn assert_store_intact(cache: &Path) {
    use sha2::Digest;
    let blobs = cache.join("blobs/sha256");
    if !blobs.is_dir() {
        return;
    }
    for entry in std::fs::read_dir(&blobs).unwrap() {
        let path = entry.unwrap().path();
        let digest = hex::encode(sha2::Sha256::digest(std::fs::read(&path).unwrap()));
        assert_eq!(path.file_name().unwrap().to_str().unwrap(), digest);
    }
}

/// The cache folder the tests share for base images (`~/.cache/nua-tests/nua-cache`, or
/// `NUA_TEST_CACHE`): bootstrapping a base takes a while, so it is done once per machine and
/// reused, and remade whenever it is missing. The blob store and layer cache are safe to
/// share between concurrent builds.
pub fn shared_cache() -> PathBuf {
    test_env();
    match std::env::var_os("NUA_TEST_CACHE").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/nua-tests/nua-cache")
        }
    }
}

/// Build base `name` in the shared cache (once per test binary and base).
pub fn shared_base(name: &str) -> PathBuf {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    static BUILT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let cache = shared_cache();
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if built.insert(name.to_owned()) {
        run_ok(
            nua_pack()
                .args(["base", "build", name, "--quiet"])
                .env("NUA_CACHE_DIR", &cache),
        );
    }
    cache
}

/// Whether base `name`, built in `cache`, is built from its lock. It is not when Debian has
/// dropped a locked version since the lock was made (a point release): the build then falls
/// back to the live archive and says so. A test that pins a digest of a base's bytes pins
/// only what the lock decides, so it checks this first; any other reason fails here.
pub fn built_from_lock(name: &str, cache: &Path) -> bool {
    let out = run(nua_pack()
        .args(["base", "build", name, "--json"])
        .env("NUA_CACHE_DIR", cache));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    if result["locked"] == true {
        return true;
    }
    assert!(
        stderr.contains("the mirror no longer has"),
        "`{name}` is built from the live archive for another reason than a dropped version:\n\
         {stderr}"
    );
    eprintln!("note: the mirror dropped a version `{name}.lock` pins: run `nua-pack base lock`");
    false
}

/// A fresh cache folder for one test whose base images are already there: the shared
/// cache's blobs, layer index and layers unpacked for the sandbox, hard-linked (blobs are
/// immutable: written once under their digest, never modified; unpacked layers are only
/// ever overlay lower folders). The app's own layers start cold.
pub fn cache_with_base(name: &str, dir: &Path) -> PathBuf {
    let shared = shared_base(name);
    let cache = dir.join("cache");
    std::fs::create_dir_all(cache.join("sandbox")).unwrap();
    for sub in ["blobs", "layers", "sandbox/layers"] {
        if shared.join(sub).is_dir() {
            run_ok(
                Command::new("cp")
                    .arg("-al")
                    .arg(shared.join(sub))
                    .arg(cache.join(sub)),
            );
        }
    }
    cache
}

/// `len` bytes gzip cannot shrink (xorshift from `seed`), so blob sizes are what a test asks
/// for; the same seed gives the same bytes.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
