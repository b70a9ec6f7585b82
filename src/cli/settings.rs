//! Environment variables and defaults, resolved in one place before any I/O.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The cache folder (blob store, layer cache); default `$XDG_CACHE_HOME/nua` or
/// `~/.cache/nua`.
pub const NUA_CACHE_DIR: &str = "NUA_CACHE_DIR";
/// A `base-images/` folder to read base definitions (and `../layers/`) from, instead of
/// the ones compiled in.
pub const NUA_BASE_IMAGES: &str = "NUA_BASE_IMAGES";
/// A mirror of Docker Hub for pulls (`https://mirror.example`, `http://HOST:PORT`).
pub const NUA_REGISTRY_MIRROR: &str = "NUA_REGISTRY_MIRROR";
/// The folder of Docker's `config.json` (registry credentials); default `~/.docker`.
pub const DOCKER_CONFIG: &str = "DOCKER_CONFIG";
/// The upper bound of every timestamp in a built image (reproducible-builds.org).
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";
/// What installs the `requirements.txt` of the dependencies step: `uv` (default) or `pip`.
pub const NUA_PIP_INSTALLER: &str = "NUA_PIP_INSTALLER";

/// `NUA_PIP_INSTALLER`: uv unless it says `pip`.
pub fn pip_installer() -> anyhow::Result<nua_build::uv::Installer> {
    let value = std::env::var(NUA_PIP_INSTALLER).unwrap_or_default();
    nua_build::uv::Installer::parse(&value).ok_or_else(|| {
        anyhow::anyhow!("{NUA_PIP_INSTALLER} is `{value}`: give `uv` (the default) or `pip`")
    })
}

pub fn cache_dir() -> anyhow::Result<PathBuf> {
    // Absolute: the sandbox changes its working folder before it uses the cache's paths.
    let absolute = |dir: PathBuf| {
        std::path::absolute(&dir).with_context(|| format!("cannot resolve `{}`", dir.display()))
    };
    if let Some(dir) = std::env::var_os(NUA_CACHE_DIR).filter(|d| !d.is_empty()) {
        return absolute(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return absolute(PathBuf::from(dir).join("nua"));
    }
    let home = std::env::var_os("HOME").filter(|d| !d.is_empty()).context(
        "cannot find a cache folder: neither `NUA_CACHE_DIR`, `XDG_CACHE_HOME` nor `HOME` is set",
    )?;
    Ok(PathBuf::from(home).join(".cache/nua"))
}

/// The user's home folder (`HOME`), for a leading `~` in paths given as arguments.
pub fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// `SOURCE_DATE_EPOCH` when set; else the time of the last commit when `app_root` is in a
/// git work tree (so that images of a commit say when it was made, and still reproduce);
/// else 0.
pub fn source_date_epoch(app_root: &Path) -> anyhow::Result<u64> {
    match std::env::var(SOURCE_DATE_EPOCH) {
        Ok(value) if !value.trim().is_empty() => value.trim().parse().with_context(|| {
            format!("`{SOURCE_DATE_EPOCH}` must be a number of seconds since 1970, not `{value}`")
        }),
        _ => Ok(git_commit_time(app_root).unwrap_or(0)),
    }
}

/// The time of the last commit that touched `dir` (`git log -1 --format=%ct -- .`), so a
/// commit elsewhere in a monorepo does not change the app's image; `None` when git is
/// missing or `dir` is not in a repo.
fn git_commit_time(dir: &Path) -> Option<u64> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["log", "-1", "--format=%ct", "--", "."])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

/// `SSL_CERT_FILE`, when it names a file: the CA bundle the user points TLS clients at.
pub fn ssl_cert_file() -> Option<PathBuf> {
    std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
}

/// The base image definitions: those of `NUA_BASE_IMAGES` when set, else the built-in ones.
pub fn catalog() -> anyhow::Result<nua_build::base::Catalog> {
    use nua_build::base::Catalog;
    Ok(
        match std::env::var_os(NUA_BASE_IMAGES).filter(|d| !d.is_empty()) {
            Some(dir) => Catalog::from_dir(Path::new(&dir))
                .with_context(|| format!("cannot read the base images of `{NUA_BASE_IMAGES}`"))?,
            None => Catalog::builtin()?,
        },
    )
}

/// The definitions a lock is made from and written beside: `NUA_BASE_IMAGES`, else
/// `./base-images` when it exists (a checkout), else the built-in ones (no folder to write).
pub fn catalog_for_writing() -> anyhow::Result<nua_build::base::Catalog> {
    let here = Path::new("base-images");
    if std::env::var_os(NUA_BASE_IMAGES).is_none_or(|d| d.is_empty()) && here.is_dir() {
        return nua_build::base::Catalog::from_dir(here)
            .context("cannot read the base images of `./base-images`");
    }
    catalog()
}

/// How to reach registries: flags, the password on stdin, `DOCKER_CONFIG` and
/// `NUA_REGISTRY_MIRROR`, resolved before any request.
/// `--username` and `--password-stdin` are for `registry` (the command's reference) only.
pub fn registry_options(
    args: &crate::cli::args::RegistryArgs,
    registry: Option<&str>,
) -> anyhow::Result<nua_registry::ClientOptions> {
    use nua_registry::{AuthConfig, ClientOptions, Secret};
    let explicit = match (&args.username, args.password_stdin) {
        (Some(user), true) => {
            let mut password = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut password)
                .context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\n', '\r']);
            anyhow::ensure!(
                !password.is_empty(),
                "`--password-stdin` read an empty password from standard input"
            );
            Some((user.clone(), Secret::new(password)))
        }
        _ => None,
    };
    let docker_config_dir = match std::env::var_os(DOCKER_CONFIG).filter(|d| !d.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir)),
        None => std::env::var_os("HOME")
            .filter(|d| !d.is_empty())
            .map(|home| PathBuf::from(home).join(".docker")),
    };
    let mirror = std::env::var(NUA_REGISTRY_MIRROR)
        .ok()
        .filter(|m| !m.trim().is_empty());
    Ok(ClientOptions {
        auth: AuthConfig {
            explicit,
            explicit_registry: registry.map(str::to_owned),
            docker_config_dir,
        },
        insecure_registries: insecure_registries(&args.insecure_registries),
        mirror,
        low_speed: low_speed()?,
        ..ClientOptions::default()
    })
}

/// Registries spoken to over plain HTTP: `--insecure-registry` and the server setting
/// `NUA_INSECURE_REGISTRIES` (`HOST:PORT`, comma-separated), which `nua deploy` and
/// `nua run` use for the images they pull.
pub const NUA_INSECURE_REGISTRIES: &str = "NUA_INSECURE_REGISTRIES";

fn insecure_registries(given: &[String]) -> Vec<String> {
    let mut all = given.to_vec();
    if let Ok(setting) = std::env::var(NUA_INSECURE_REGISTRIES) {
        all.extend(
            setting
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(str::to_owned),
        );
    }
    all
}

/// The low-speed limit of downloads: `NUA_LOW_SPEED_LIMIT` bytes per second over
/// `NUA_LOW_SPEED_TIME` seconds, else 1 KiB/s over 30 s; a value that is not a number is an
/// error.
pub fn low_speed() -> anyhow::Result<nua_oci::http::LowSpeed> {
    nua_oci::http::LowSpeed::from_env().map_err(anyhow::Error::msg)
}
