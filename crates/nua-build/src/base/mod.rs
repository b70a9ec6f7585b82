//! Base images: the definitions of `base-images/` and `layers/`, their lock files, the
//! builder names of nua-config that resolve to them, and the building of a base from Debian
//! packages in the sandbox, cached step by step.
//!
//! A base is a chain: a Debian bootstrap (`[bootstrap]`), then the layers of each base in
//! the chain (`from = "debian-bookworm"`, `layers = ["python"]`). Each step with packages
//! gives two layers: the unpacked packages with their dpkg database, then what their
//! maintainer scripts and the step's commands changed, run in the sandbox with no network.
//! Every layer is cached under a key made of its parent's key and its inputs (the locked
//! package hashes, the commands), so a base is built once and shared by every app.

mod catalog;
mod config;
mod image;
mod lock;
mod make;
mod names;
mod on_image;
mod outdated;
mod plan;

use std::path::PathBuf;

use crate::layers::InstallError;
use crate::{Event, Reporter};
use nua_oci::BlobStore;

pub use crate::layers::{BaseOptions, PlannedStep};
pub use catalog::{BaseDef, Bootstrap, Catalog, LayerDef};
pub use config::{HealthcheckDef, ImageSettings, LayerFile};
pub use image::{image_base, is_image_reference, ImageOrigin, Written};
pub use lock::{IndexDate, Lock, LockedStep};
pub use make::{build_base, BaseImage};
pub use names::{BaseChoice, Resolved, DEFAULT_BASE};
pub use outdated::{outdated, Outdated};
pub use plan::{lock_base, Plan};

/// What can go wrong with base definitions and base builds.
#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is not a valid definition: {message}", path.display())]
    Definition { path: PathBuf, message: String },
    #[error("there is no base image `{name}` (known: {})", known.join(", "))]
    UnknownBase { name: String, known: Vec<String> },
    #[error("no base image matches builder `{builder}` (known: {})", known.join(", "))]
    UnknownBuilder { builder: String, known: Vec<String> },
    #[error("base image `{base}` uses layer `{layer}`, which `layers/` does not define")]
    UnknownLayer { base: String, layer: String },
    #[error("`{}`: key `suites`: the mirror has no suite `{suite}` (`{url}` is not found)", path.display())]
    NoSuite {
        path: PathBuf,
        suite: String,
        url: String,
    },
    #[error("{at}: cannot pull `{reference}`")]
    Image {
        at: Written,
        reference: String,
        #[source]
        source: Box<nua_registry::Error>,
    },
    #[error("{at}: `{reference}` is an image for `{platform}`, and this machine runs `{wanted}`")]
    Platform {
        at: Written,
        reference: String,
        platform: String,
        wanted: String,
    },
    #[error("{at}: cannot unpack `{reference}`")]
    Unpack {
        at: Written,
        reference: String,
        #[source]
        source: Box<nua_sandbox::Error>,
    },
    #[error(
        "{at}: layer `{layer}` installs Debian packages, and `{reference}` is not a Debian \
         image (its os-release says `{distro}`)"
    )]
    NotDebian {
        at: Written,
        reference: String,
        distro: String,
        layer: String,
    },
    #[error("base image `{name}` is built `from` itself")]
    Cycle { name: String },
    #[error("cannot resolve the packages of `{base}`, step `{step}`")]
    Debian {
        base: String,
        step: String,
        #[source]
        source: Box<nua_debian::Error>,
    },
    #[error(transparent)]
    Install(#[from] crate::layers::InstallError),
    #[error(transparent)]
    Oci(#[from] nua_oci::Error),
}

impl BaseError {
    /// What the user can do about it, when there is something (its cause's hint).
    pub fn hint(&self) -> Option<String> {
        match self {
            BaseError::Debian { source, .. } => source.hint(),
            BaseError::Install(e) => e.hint(),
            BaseError::Image { source, .. } => source.hint(),
            BaseError::Unpack { source, .. } => source.hint(),
            BaseError::Platform { wanted, .. } => Some(format!(
                "use a tag or digest of the image made for `{wanted}` (a multi-platform \
                 index is resolved to it by itself)"
            )),
            BaseError::NoSuite { .. } => Some(
                "list in `suites` only suites the mirror has (`SUITE`, `SUITE-updates`, \
                 `SUITE-security` by default), or pick another mirror"
                    .to_owned(),
            ),
            _ => None,
        }
    }
}

/// Build base `name` (or take it from the cache) as its lock says, saying what the user
/// should know. When the mirror has dropped a locked package (Debian removes superseded
/// versions at each point release), the base is resolved from the live archive instead,
/// with a warning, rather than not built at all.
pub fn build(
    catalog: &Catalog,
    name: &str,
    mirror: Option<&str>,
    store: &BlobStore,
    options: &BaseOptions,
    reporter: &mut dyn Reporter,
) -> Result<(Plan, BaseImage), BaseError> {
    if catalog.root_image(name)?.is_some() {
        return on_image::build(catalog, name, mirror, store, options, reporter);
    }
    let plan = Plan::new(catalog, name, mirror, store)?;
    let plan_options = |plan: &Plan| BaseOptions {
        layer: nua_oci::LayerOptions {
            source_date_epoch: plan.source_date_epoch,
            ..options.layer
        },
        ..options.clone()
    };
    for message in &plan.warnings {
        reporter.event(Event::Warning { message });
    }
    match build_base(&plan, store, &plan_options(&plan), reporter) {
        Err(BaseError::Install(InstallError::PackageGone { url, .. })) if plan.locked => {
            let why = format!(
                "the mirror no longer has `{url}`, which `base-images/{name}.lock` pins: \
                 building `{name}` from the live archive (run `nua-pack base lock {name}`, \
                 or pin a `snapshot` in its definition)"
            );
            let plan = Plan::live(catalog, name, mirror, store, why)?;
            for message in &plan.warnings {
                reporter.event(Event::Warning { message });
            }
            let base = build_base(&plan, store, &plan_options(&plan), reporter)?;
            Ok((plan, base))
        }
        result => result.map(|base| (plan, base)),
    }
}

/// The lock base `name` should have: its packages resolved against the live archive (and,
/// for a base that starts from a registry image, that image pinned by digest).
pub fn lock(
    catalog: &Catalog,
    name: &str,
    mirror: Option<&str>,
    store: &BlobStore,
    options: &BaseOptions,
    reporter: &mut dyn Reporter,
) -> Result<Lock, BaseError> {
    if catalog.root_image(name)?.is_some() {
        return on_image::lock(catalog, name, mirror, store, options, reporter);
    }
    lock_base(catalog, name, mirror, store)
}
