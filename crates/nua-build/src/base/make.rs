//! Building a base: each step of its [`Plan`] becomes layers (see [`Installer`]), taken
//! from the layer cache when their key is known, else made with the Debian module and the
//! sandbox.

use std::collections::BTreeMap;

use super::plan::Plan;
use super::BaseError;
use crate::layers::{key_of, BaseOptions, Chain, Installer, LayerCache, LayerSummary};
use crate::Reporter;
use nua_debian as debian;
use nua_oci::BlobStore;
use nua_sandbox::Sandbox;

/// Bump when the bytes a base step writes change for the same inputs (v2: the image's apt
/// sources name the updates and security suites).
const BASE_FORMAT: &str = "nua-base-v2";

/// A built base: its layers, bottom first, and its image config variables.
pub struct BaseImage {
    pub name: String,
    /// Bottom first.
    pub layers: Vec<LayerSummary>,
    pub env: BTreeMap<String, String>,
    /// Entry point, command, ports… of its image config.
    pub config: super::ImageSettings,
    /// The cache key of the last layer: the identity of this base for the steps above it.
    pub key: String,
    /// Where its packages came from: app packages come from there too. `None` for an
    /// image that is not Debian's (no package can be added to it).
    pub source: Option<debian::Source>,
    /// Every package Nua installed, for resolving app packages against it.
    pub packages: Vec<debian::Locked>,
    /// What an image from a registry holds already (its dpkg database).
    pub installed: Vec<debian::Installed>,
    /// The distribution, as package URLs name it (`debian-12`).
    pub distro: String,
    /// The sandbox, when a step had to run.
    pub sandbox: Option<Sandbox>,
    /// The latest time in its layers (its archive's date).
    pub epoch: u64,
    /// The registry image it starts from, when it does.
    pub image: Option<super::image::ImageOrigin>,
}

/// Build (or take from the cache) every layer of `plan`.
pub fn build_base(
    plan: &Plan,
    store: &BlobStore,
    options: &BaseOptions,
    reporter: &mut dyn Reporter,
) -> Result<BaseImage, BaseError> {
    let mut chain = Chain {
        layers: Vec::new(),
        key: key_of(
            "",
            &[
                BASE_FORMAT,
                &options.layer.compression.cache_name(),
                &options.layer.source_date_epoch.to_string(),
            ],
        ),
        sandbox: None,
    };
    let cache = LayerCache::new(&options.cache_dir).with_remote(&options.remote);
    let installer = Installer {
        what: &plan.base,
        source: plan.source.as_ref(),
        store,
        options,
        cache: &cache,
    };
    for step in &plan.steps {
        installer.install(step, &format!("{}: ", plan.base), &mut chain, reporter)?;
    }
    Ok(BaseImage {
        name: plan.base.clone(),
        layers: chain.layers,
        env: plan.env.clone(),
        config: plan.config.clone(),
        key: chain.key,
        source: plan.source.clone(),
        packages: plan.steps.iter().flat_map(|s| s.packages.clone()).collect(),
        installed: Vec::new(),
        distro: plan
            .source
            .as_ref()
            .map_or_else(String::new, |s| distro_of(&s.suite)),
        sandbox: chain.sandbox,
        epoch: options.layer.source_date_epoch,
        image: None,
    })
}

/// The distribution a Debian suite belongs to, as package URLs name it (`debian-12`).
pub fn distro_of(suite: &str) -> String {
    let version = match suite {
        "bullseye" => "11",
        "bookworm" => "12",
        "trixie" => "13",
        "forky" => "14",
        other => other,
    };
    format!("debian-{version}")
}
