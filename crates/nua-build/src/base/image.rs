//! Registry images as bases: a nua-config `builder` that is an image reference
//! (`python:3.12-slim`, `registry.example/team/base:2`), or a base definition's `image`.
//!
//! The image is pulled by digest into the store, checked for this machine's platform, and
//! unpacked once by the sandbox, whose rules refuse hostile layers (`..`, absolute names,
//! writes through symlinks, hard links out of the root, device nodes) with the entry named.
//! From the unpacked root Nua reads what the steps above need: `/etc/os-release` (is it
//! Debian, which release) and `/var/lib/dpkg/status` (what is installed, so that Debian
//! packages resolve against it). Those facts are kept per manifest digest, so a rebuild on
//! the same image reads nothing again.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{BaseError, BaseImage};
use crate::layers::{pull_image, sandbox_for, write_file, BaseOptions, KeyHasher};
use crate::Reporter;
use nua_debian as debian;
use nua_oci::{self as oci, BlobStore};
use nua_registry::{PullOptions, Reference};

/// Bump when what is read from an image changes.
const IMAGE_FACTS_FORMAT: &str = "nua-image-facts-v1";

/// Whether a builder name is an image reference rather than a base of the catalog: it
/// names a registry or repository (`/`), a tag (`:`) or a digest (`@sha256:`).
pub fn is_image_reference(builder: &str) -> bool {
    builder.contains('/') || builder.contains(':') || builder.contains('@')
}

/// Where a reference was written, for errors: `` `nua-config.toml`, key `build.builder` ``.
#[derive(Debug, Clone)]
pub struct Written {
    pub file: PathBuf,
    pub key: &'static str,
}

impl std::fmt::Display for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`, key `{}`", self.file.display(), self.key)
    }
}

/// The image a base starts from, as pulled: what the app's image keeps of it.
#[derive(Debug, Clone)]
pub struct ImageOrigin {
    /// As written (`python:3.12-slim`).
    pub reference: String,
    /// Its manifest digest.
    pub digest: oci::Digest,
    /// Its config: the starting point of the app's (variables, entry point, volumes…).
    pub config: oci::ContainerConfig,
}

/// What Nua reads of an image's root once, kept per manifest digest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Facts {
    /// `/etc/os-release`'s `ID` (`debian`, `alpine`, `ubuntu`), empty when it has none.
    id: String,
    /// `VERSION_ID` (`12`, `3.19`).
    version_id: String,
    /// `VERSION_CODENAME` (`bookworm`).
    codename: String,
    /// The dpkg database, when the image has one.
    installed: Option<Vec<debian::Installed>>,
}

impl Facts {
    /// The distribution as the SBOM names it (`debian-12`, `alpine-3.19`).
    fn distro(&self) -> String {
        match (self.id.as_str(), self.version_id.as_str()) {
            ("", _) => "unknown".to_owned(),
            (id, "") => id.to_owned(),
            (id, version) => format!("{id}-{version}"),
        }
    }
}

/// `KEY=value` lines of an os-release file (os-release(5)): quotes removed.
fn os_release(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.trim().split_once('='))
        .filter(|(key, _)| !key.starts_with('#'))
        .map(|(key, value)| {
            let value = value.trim();
            let unquoted = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            (key.trim().to_owned(), unquoted.replace("\\\"", "\""))
        })
        .collect()
}

/// The time an image config says it was made (`2024-01-02T03:04:05.123Z`), in seconds.
fn created_epoch(created: Option<&str>) -> Option<u64> {
    let text = created?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.splitn(3, '-');
    let (year, month, day) = (d.next()?, d.next()?, d.next()?);
    let time = time.strip_suffix('Z')?;
    let time = time.split('.').next()?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.get(month.parse::<usize>().ok()?.checked_sub(1)?)?;
    // The Release-file form, which the Debian module already reads.
    debian::parse_date(&format!("{day} {month} {year} {time} UTC"))
}

/// The base that `reference` (written at `at`) gives: pulled, checked, unpacked once.
pub fn image_base(
    reference: &str,
    at: &Written,
    mirror: Option<&str>,
    store: &BlobStore,
    options: &BaseOptions,
    reporter: &mut dyn Reporter,
) -> Result<BaseImage, BaseError> {
    let parsed = Reference::parse(reference).map_err(|source| BaseError::Image {
        at: at.clone(),
        reference: reference.to_owned(),
        source: Box::new(source.into()),
    })?;
    let pulled = pull_image(&parsed, store, &options.registry, reporter).map_err(|source| {
        BaseError::Image {
            at: at.clone(),
            reference: reference.to_owned(),
            source: Box::new(source),
        }
    })?;
    let wanted = PullOptions::default().platform;
    let config = &pulled.config;
    if config.os != wanted.os || config.architecture != wanted.architecture {
        return Err(BaseError::Platform {
            at: at.clone(),
            reference: reference.to_owned(),
            platform: format!("{}/{}", config.os, config.architecture),
            wanted: format!("{}/{}", wanted.os, wanted.architecture),
        });
    }
    let layers: Vec<oci::Layer> = pulled.layers.iter().map(|l| l.layer.clone()).collect();
    let mut sandbox = None;
    let facts = facts_of(
        &pulled.digest,
        &layers,
        &mut sandbox,
        options,
        store,
        reporter,
    )
    .map_err(|source| BaseError::Unpack {
        at: at.clone(),
        reference: reference.to_owned(),
        source: Box::new(source),
    })?;
    let source = match (&facts.id[..], &facts.codename[..], &facts.installed) {
        ("debian", codename, Some(_)) if !codename.is_empty() => {
            let source =
                debian::Source::from_host(codename).map_err(|source| BaseError::Debian {
                    base: reference.to_owned(),
                    step: "packages".to_owned(),
                    source: Box::new(source),
                })?;
            Some(match mirror {
                Some(mirror) => source.with_mirror(mirror),
                None => source,
            })
        }
        _ => None,
    };
    let container = config.config.clone().unwrap_or_default();
    let env = container
        .env
        .iter()
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Ok(BaseImage {
        name: reference.to_owned(),
        layers: pulled.layers,
        env,
        config: super::ImageSettings::default(),
        key: KeyHasher::new()
            .field("nua-image-base-v1")
            .raw(pulled.digest.to_string())
            .finish(),
        source,
        packages: Vec::new(),
        installed: facts.installed.clone().unwrap_or_default(),
        distro: facts.distro(),
        sandbox,
        epoch: created_epoch(config.created.as_deref()).unwrap_or(0),
        image: Some(ImageOrigin {
            reference: reference.to_owned(),
            digest: pulled.digest,
            config: container,
        }),
    })
}

/// The facts of the image `digest`: from the cache, else read from its root (unpacking its
/// layers with the sandbox's rules, which is where a hostile layer is refused).
fn facts_of(
    digest: &oci::Digest,
    layers: &[oci::Layer],
    sandbox: &mut Option<nua_sandbox::Sandbox>,
    options: &BaseOptions,
    store: &BlobStore,
    reporter: &mut dyn Reporter,
) -> Result<Facts, nua_sandbox::Error> {
    let file = options
        .cache_dir
        .join("images")
        .join(format!("{}.json", digest.hex()));
    #[derive(Deserialize)]
    struct Kept {
        format: String,
        facts: Facts,
    }
    if let Some(kept) = fs_err::read(&file)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Kept>(&bytes).ok())
        .filter(|k| k.format == IMAGE_FACTS_FORMAT)
    {
        return Ok(kept.facts);
    }
    let root = sandbox_for(sandbox, options, store, reporter)?.root(layers)?;
    let release = match root.read_file("/etc/os-release")? {
        Some(bytes) => Some(bytes),
        None => root.read_file("/usr/lib/os-release")?,
    };
    let release = os_release(&String::from_utf8_lossy(&release.unwrap_or_default()));
    let field = |key: &str| release.get(key).cloned().unwrap_or_default();
    let installed = root
        .read_file("/var/lib/dpkg/status")?
        .and_then(|status| debian::parse_status(&status).ok());
    let facts = Facts {
        id: field("ID"),
        version_id: field("VERSION_ID"),
        codename: field("VERSION_CODENAME"),
        installed,
    };
    let kept = serde_json::json!({"format": IMAGE_FACTS_FORMAT, "facts": facts});
    // A cache that cannot be written costs a read next time, nothing more.
    let _ = write_file(&file, kept.to_string().as_bytes());
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("python:3.12-slim", true)]
    #[case("127.0.0.1:5000/bases/debian:bookworm", true)]
    #[case("team/base", true)]
    #[case("debian@sha256:0123", true)]
    #[case("python", false)]
    #[case("node-18", false)]
    #[case("python-3.12", false)]
    fn builders_that_are_image_references(#[case] name: &str, #[case] image: bool) {
        assert_eq!(is_image_reference(name), image);
    }

    #[test]
    fn os_release_fields_are_unquoted() {
        let text = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n\
                    VERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n# comment\nNAME='x'\n";
        let fields = os_release(text);
        assert_eq!(fields["ID"], "debian");
        assert_eq!(fields["VERSION_ID"], "12");
        assert_eq!(fields["VERSION_CODENAME"], "bookworm");
        assert_eq!(fields["PRETTY_NAME"], "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(fields["NAME"], "x");
    }

    #[rstest]
    #[case(Some("1970-01-01T00:00:00Z"), Some(0))]
    #[case(Some("2023-11-14T22:13:20Z"), Some(1_700_000_000))]
    #[case(Some("2023-11-14T22:13:20.123456789Z"), Some(1_700_000_000))]
    #[case(Some("2023-11-14T22:13:20+02:00"), None)]
    #[case(Some("yesterday"), None)]
    #[case(None, None)]
    fn image_creation_times(#[case] created: Option<&str>, #[case] epoch: Option<u64>) {
        assert_eq!(created_epoch(created), epoch);
    }

    #[test]
    fn the_distribution_is_named_as_purls_name_it() {
        let facts = |id: &str, version: &str| Facts {
            id: id.into(),
            version_id: version.into(),
            ..Facts::default()
        };
        assert_eq!(facts("debian", "12").distro(), "debian-12");
        assert_eq!(facts("alpine", "3.19.1").distro(), "alpine-3.19.1");
        assert_eq!(facts("", "").distro(), "unknown");
    }
}
