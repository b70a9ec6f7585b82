//! uv, the installer of the `dependencies` step of a `requirements.txt`: the same packages as
//! `pip install -r`, resolved and downloaded in parallel, and byte-compiled on every core.
//! pip downloads one file after another and compiles on one core: on flask's nine wheels,
//! 3.1–3.4 s against 0.9 s for uv, byte-compiling included (2 cores; BENCHMARKS.md).
//!
//! uv is never taken from the machine or the base: the static (musl) binary of one pinned
//! release is taken from its wheel on PyPI, checked against the wheel's sha256, kept in the
//! cache folder and bound read-only into the sandbox, outside the root: nothing of it reaches
//! a layer. It is fetched when a step runs it, never for a cached build.
//!
//! It runs only where it installs what pip would: into the base's virtual environment
//! (`/nua/venv`), with pip's way of choosing among indexes (`unsafe-best-match`, the best
//! version across `--index-url` and `--extra-index-url`), `.pyc` files compiled as pip does
//! (hash-based under `SOURCE_DATE_EPOCH`), files copied rather than linked to its cache.
//! Without the venv, on another architecture, when the image's variables configure pip
//! (`PIP_INDEX_URL`, …, which uv does not read), or with `NUA_PIP_INSTALLER=pip`, the step
//! runs `pip install -r` as before.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nua_oci::http::Http;
use nua_oci::Digest;
use nua_sandbox::Bind;

use super::Error;

/// The pinned release.
pub const VERSION: &str = "0.13.9";

/// Where the binary is seen in the sandbox (its version in the path, so that the step's
/// command, and so its cache key, changes with it).
pub const TARGET: &str = "/run/nua/uv-0.13.9/uv";

/// The interpreter of the base's virtual environment, which uv installs into.
const VENV_PYTHON: &str = "/nua/venv/bin/python";

/// A wheel's size is far below this; a server sending more is not PyPI.
const MAX_WHEEL_SIZE: u64 = 128 << 20;

/// The static binary of each architecture: its wheel on PyPI and the wheel's sha256.
struct Wheel {
    arch: &'static str,
    url: &'static str,
    sha256: &'static str,
}

const WHEELS: &[Wheel] = &[
    Wheel {
        arch: "x86_64",
        url: "https://files.pythonhosted.org/packages/fe/fe/\
              794884de0efd3ac77a427cab21aa72c0483e100c55a42cd5cbb02c141b84/\
              uv-0.13.9-py3-none-musllinux_1_1_x86_64.whl",
        sha256: "2c45530751517d6c3bbc69a19473f6effe47cce047bede01ffd8af7ea7b36b25",
    },
    Wheel {
        arch: "aarch64",
        url: "https://files.pythonhosted.org/packages/57/15/\
              94b6cd62ac3ff6550288328e8035288875197cbc183f51554b266a69877b/\
              uv-0.13.9-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.\
              musllinux_1_1_aarch64.whl",
        sha256: "5435c5ce14a56431208ca0996416d310f1598e8c2c8ba707688985a16bb82dbe",
    },
];

/// Which installer the `dependencies` step of a `requirements.txt` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Installer {
    /// uv where it installs what pip would, else pip.
    #[default]
    Uv,
    /// Always pip (`NUA_PIP_INSTALLER=pip`, read by the CLI).
    Pip,
}

impl Installer {
    /// `uv` (also when empty) or `pip`; `None` for anything else.
    pub fn parse(value: &str) -> Option<Installer> {
        match value {
            "" | "uv" => Some(Installer::Uv),
            "pip" => Some(Installer::Pip),
            _ => None,
        }
    }
}

/// The wheel of this machine's architecture, if uv publishes one.
fn wheel() -> Option<&'static Wheel> {
    WHEELS.iter().find(|w| w.arch == std::env::consts::ARCH)
}

/// Whether the dependencies step of an image with the variables `image_env` (`KEY=VALUE`)
/// may run uv: it can on this machine, and none of them configures pip, which uv would not
/// read (the build's own `PIP_*` settings, for pip's output, are not the image's).
pub fn usable(installer: Installer, image_env: &[String]) -> bool {
    installer == Installer::Uv
        && wheel().is_some()
        && !image_env.iter().any(|kv| kv.starts_with("PIP_"))
}

/// The command installing `requirements` (a path in the sandbox): uv into the base's
/// virtual environment, or pip where there is none.
pub fn install_command(requirements: &str) -> String {
    format!(
        "if [ -x {VENV_PYTHON} ]; then {TARGET} pip install --python {VENV_PYTHON} \
         --compile-bytecode --link-mode copy --index-strategy unsafe-best-match \
         -r {requirements}; else pip install -r {requirements}; fi"
    )
}

/// The read-only bind of the binary at [`TARGET`], fetched into `cache_dir` when missing.
pub fn bind(cache_dir: &Path) -> Result<Bind, Error> {
    Ok(Bind::read_only(binary(cache_dir)?, TARGET))
}

/// uv's binary in `cache_dir`, downloaded, checked and unpacked once.
fn binary(cache_dir: &Path) -> Result<PathBuf, Error> {
    let wheel = wheel().ok_or_else(|| Error::Uv {
        version: VERSION,
        url: String::new(),
        reason: format!("there is no build of uv for {}", std::env::consts::ARCH),
    })?;
    let dir = cache_dir
        .join("tools")
        .join(format!("uv-{VERSION}-{}", wheel.arch));
    let path = dir.join("uv");
    if path.is_file() {
        // Its time says when a build last used it: `cache prune` goes by it.
        let _ = fs_err::File::open(&path).and_then(|f| f.file().set_modified(SystemTime::now()));
        return Ok(path);
    }
    let failed = |reason: String| Error::Uv {
        version: VERSION,
        url: wheel.url.to_owned(),
        reason,
    };
    let http = Http::new().map_err(|e| failed(e.to_string()))?;
    let bytes = http
        .get_bytes(wheel.url, MAX_WHEEL_SIZE)
        .map_err(|e| failed(format!("{} (after {} retries)", e.kind, e.retries)))?;
    let program = program_of(&bytes, wheel.sha256).map_err(failed)?;
    let cache_error = |source| Error::Cache {
        path: dir.clone(),
        source,
    };
    fs_err::create_dir_all(&dir).map_err(cache_error)?;
    // Written whole beside its place, then renamed: a killed build leaves no half binary,
    // and two builds fetching at once both end with the same file.
    let mut file = tempfile::NamedTempFile::new_in(&dir).map_err(cache_error)?;
    file.write_all(&program).map_err(cache_error)?;
    file.as_file().sync_all().map_err(cache_error)?;
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(file.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(cache_error)?;
    file.persist(&path).map_err(|e| cache_error(e.error))?;
    Ok(path)
}

/// The `uv` program in `wheel` (a zip archive), once the wheel is checked to hash to
/// `sha256`.
fn program_of(wheel: &[u8], sha256: &str) -> Result<Vec<u8>, String> {
    let actual = Digest::of(wheel).to_string();
    if actual != format!("sha256:{sha256}") {
        return Err(format!(
            "the wheel has digest `{actual}`, but nua pins `sha256:{sha256}`; nothing was kept"
        ));
    }
    let corrupt = |e: zip::result::ZipError| format!("the wheel cannot be read: {e}");
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(wheel)).map_err(corrupt)?;
    let name = format!("uv-{VERSION}.data/scripts/uv");
    let mut entry = zip.by_name(&name).map_err(corrupt)?;
    let mut program = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or_default());
    entry
        .read_to_end(&mut program)
        .map_err(|e| format!("the wheel cannot be read: {e}"))?;
    Ok(program)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_settings_uv_would_not_read_keep_pip() {
        let plain = [
            "PATH=/nua/venv/bin:/usr/bin".to_owned(),
            "LANG=C.UTF-8".to_owned(),
        ];
        assert_eq!(usable(Installer::Uv, &plain), wheel().is_some());
        assert!(!usable(Installer::Pip, &plain));
        let index = ["PIP_INDEX_URL=https://mirror/simple".to_owned()];
        assert!(!usable(Installer::Uv, &index));
    }

    #[test]
    fn a_kept_binary_is_used_without_a_download_and_marked_used() {
        let Some(wheel) = wheel() else { return };
        let cache = tempfile::tempdir().unwrap();
        let dir = cache
            .path()
            .join("tools")
            .join(format!("uv-{VERSION}-{}", wheel.arch));
        fs_err::create_dir_all(&dir).unwrap();
        let kept = dir.join("uv");
        fs_err::write(&kept, b"#!/bin/sh\n").unwrap();
        let month_ago = SystemTime::now() - std::time::Duration::from_secs(30 * 24 * 3600);
        fs_err::File::open(&kept)
            .unwrap()
            .file()
            .set_modified(month_ago)
            .unwrap();
        // No network is asked: the kept file is the one bound.
        assert_eq!(binary(cache.path()).unwrap(), kept);
        let used = fs_err::metadata(&kept).unwrap().modified().unwrap();
        assert!(used > month_ago + std::time::Duration::from_secs(29 * 24 * 3600));
    }

    #[test]
    fn the_command_falls_back_to_pip_without_the_venv() {
        let command = install_command("/run/nua/deps/requirements.txt");
        assert!(command.starts_with("if [ -x /nua/venv/bin/python ]; then /run/nua/uv-0.13.9/uv pip install --python /nua/venv/bin/python"));
        assert!(command.ends_with("else pip install -r /run/nua/deps/requirements.txt; fi"));
        assert!(TARGET.contains(VERSION));
    }

    fn wheel_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        for (name, data) in entries {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(data).unwrap();
        }
        zip.finish().unwrap();
        out.into_inner()
    }

    fn sha256(bytes: &[u8]) -> String {
        Digest::of(bytes).to_string()["sha256:".len()..].to_owned()
    }

    #[test]
    fn the_program_comes_only_from_a_wheel_of_the_pinned_digest() {
        let name = format!("uv-{VERSION}.data/scripts/uv");
        let good = wheel_with(&[(&name, b"\x7fELF the program")]);
        assert_eq!(
            program_of(&good, &sha256(&good)).unwrap(),
            b"\x7fELF the program"
        );
        // One byte changed: refused, whatever it holds.
        let mut tampered = good.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let err = program_of(&tampered, &sha256(&good)).unwrap_err();
        assert!(
            err.contains("nua pins") && err.contains("nothing was kept"),
            "{err}"
        );
        // The right digest but no program in it.
        let empty = wheel_with(&[("uv/__init__.py", b"")]);
        let err = program_of(&empty, &sha256(&empty)).unwrap_err();
        assert!(err.contains("cannot be read"), "{err}");
    }

    #[test]
    fn the_environment_variable_chooses_the_installer() {
        assert_eq!(Installer::parse(""), Some(Installer::Uv));
        assert_eq!(Installer::parse("uv"), Some(Installer::Uv));
        assert_eq!(Installer::parse("pip"), Some(Installer::Pip));
        assert_eq!(Installer::parse("poetry"), None);
    }
}
