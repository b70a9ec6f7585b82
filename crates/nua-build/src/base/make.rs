//! Building a base: each step of its [`Plan`] becomes layers, taken from the layer cache
//! when their key is known, else made with the Debian module and the sandbox.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use std::sync::atomic::{AtomicU64, Ordering};

use super::plan::{Plan, PlannedStep, BOOTSTRAP};
use super::BaseError;
use crate::cache::LayerCache;
use crate::{Event, Reporter};
use nua_debian as debian;
use nua_oci as oci;
use nua_oci::BlobStore;
use nua_sandbox::{self as sandbox, Sandbox};

/// Bump when the bytes a base step writes change for the same inputs.
const BASE_FORMAT: &str = "nua-base-v1";

/// Maintainer scripts and layer commands get this long before they are killed.
const STEP_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How to build bases.
#[derive(Debug, Clone)]
pub struct BaseOptions {
    /// The cache folder: blob store, layer cache, sandbox roots.
    pub cache_dir: PathBuf,
    pub layer: oci::LayerOptions,
}

/// A built base: its layers, bottom first, and its image config variables.
pub struct BaseImage {
    pub name: String,
    /// (step, layer, taken from the cache)
    pub layers: Vec<(String, oci::Layer, bool)>,
    pub env: BTreeMap<String, String>,
    /// The cache key of the last layer: the identity of this base for the steps above it.
    pub key: String,
    /// Where its packages came from: app packages come from there too.
    pub source: debian::Source,
    /// Every package installed, for resolving app packages against it.
    pub packages: Vec<debian::Locked>,
    /// The sandbox, when a step had to run.
    pub sandbox: Option<Sandbox>,
    /// The latest time in its layers (its archive's date).
    pub epoch: u64,
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
    let cache = LayerCache::new(&options.cache_dir);
    let installer = Installer {
        what: &plan.base,
        source: &plan.source,
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
        key: chain.key,
        source: plan.source.clone(),
        packages: plan.steps.iter().flat_map(|s| s.packages.clone()).collect(),
        sandbox: chain.sandbox,
        epoch: options.layer.source_date_epoch,
    })
}

/// Layers being stacked: what is there so far, the cache key of the top one, and the
/// sandbox once a step had to run (a fully cached chain needs none).
pub struct Chain {
    /// (step, layer, taken from the cache), bottom first.
    pub layers: Vec<(String, oci::Layer, bool)>,
    pub key: String,
    pub sandbox: Option<Sandbox>,
}

impl Chain {
    /// The sandbox (see [`sandbox_for`]).
    pub fn sandbox(
        &mut self,
        options: &BaseOptions,
        store: &BlobStore,
        reporter: &mut dyn Reporter,
    ) -> Result<&Sandbox, sandbox::Error> {
        sandbox_for(&mut self.sandbox, options, store, reporter)
    }

    /// The layers alone.
    pub fn only_layers(&self) -> Vec<oci::Layer> {
        only_layers(&self.layers)
    }
}

/// Installs Debian packages onto a [`Chain`]: a base's steps, or an app's packages.
pub struct Installer<'a> {
    /// What the packages are for (a base or app name), for errors.
    pub what: &'a str,
    pub source: &'a debian::Source,
    pub store: &'a BlobStore,
    pub options: &'a BaseOptions,
    pub cache: &'a LayerCache,
}

impl Installer<'_> {
    /// Add `step` to `chain`: one layer of unpacked packages (with the dpkg database) when
    /// it has packages, then one of what their maintainer scripts and the step's commands
    /// changed, run as root with no network. Steps are labelled `<prefix><step>`.
    pub fn install(
        &self,
        step: &PlannedStep,
        prefix: &str,
        chain: &mut Chain,
        reporter: &mut dyn Reporter,
    ) -> Result<(), BaseError> {
        let (what, store, options) = (self.what, self.store, self.options);
        let sandbox_error = |step: &str| {
            let step = step.to_owned();
            move |source| BaseError::Sandbox {
                base: what.to_owned(),
                step,
                source: Box::new(source),
            }
        };
        let debian_error = |step: &str| {
            let step = step.to_owned();
            move |source| BaseError::Debian {
                base: what.to_owned(),
                step,
                source: Box::new(source),
            }
        };
        // Fetch what is not in the store yet (a cached layer may need its packages again
        // when the layer above it is not cached), and say how much came over the network.
        let fetch = |reporter: &mut dyn Reporter| {
            let (count, bytes) = (AtomicU64::new(0), AtomicU64::new(0));
            debian::download(self.source, &step.packages, store, &|event| {
                if let debian::Event::Downloaded { size, .. } = event {
                    count.fetch_add(1, Ordering::Relaxed);
                    bytes.fetch_add(size, Ordering::Relaxed);
                }
            })
            .map_err(|err| match err {
                debian::Error::Http {
                    kind: debian::HttpKind::Status(404),
                    url,
                    ..
                } => BaseError::PackageGone {
                    base: what.to_owned(),
                    url,
                },
                other => debian_error(&step.name)(other),
            })?;
            let count = count.into_inner();
            if count > 0 {
                let line = format!(
                    "fetched {count} packages ({:.1} MB) from {}",
                    bytes.into_inner() as f64 / 1e6,
                    self.source.mirror
                );
                reporter.event(Event::Output { line: &line });
            }
            Ok::<(), BaseError>(())
        };

        let bootstrap = step.name == BOOTSTRAP;
        let has_packages = !step.packages.is_empty();
        if has_packages {
            let label = format!(
                "{prefix}{}: unpack {} packages",
                step.name,
                step.packages.len()
            );
            let packages = serde_json::to_string(&step.packages).expect("serializable");
            let unpack_key = key_of(&chain.key, &["unpack", &packages, &bootstrap.to_string()]);
            let below = chain.only_layers();
            let sandbox = &mut chain.sandbox;
            let make = |reporter: &mut dyn Reporter| {
                fetch(reporter)?;
                // Packages over a root are added to its dpkg database.
                let status = if bootstrap {
                    None
                } else {
                    let root = sandbox_for(sandbox, options, store, reporter)
                        .and_then(|s| s.root(&below))
                        .map_err(sandbox_error(&step.name))?;
                    root.read_file("/var/lib/dpkg/status")
                        .map_err(sandbox_error(&step.name))?
                };
                debian::unpack_layer(
                    &step.packages,
                    store,
                    status.as_deref(),
                    self.source,
                    &options.layer,
                )
                .map_err(debian_error(&step.name))
            };
            let layer = self
                .cache
                .step(store, &unpack_key, &label, reporter, make, cache_error)?;
            chain.layers.push(layer);
            chain.key = unpack_key;
        }
        if !has_packages && step.run.is_empty() {
            return Ok(());
        }
        // The packages are in the parent key already; the configure script follows from them.
        let label = if has_packages {
            format!("{prefix}{}: configure", step.name)
        } else {
            format!("{prefix}{}", step.name)
        };
        let run_key = key_of(
            &chain.key,
            &["run", &has_packages.to_string(), &step.run.join("\n")],
        );
        let below = chain.only_layers();
        let sandbox = &mut chain.sandbox;
        let make = |reporter: &mut dyn Reporter| {
            let mut script = vec!["set -e".to_owned()];
            if has_packages {
                fetch(reporter)?;
                script.push(
                    debian::configure_script(&step.packages, store)
                        .map_err(debian_error(&step.name))?,
                );
            }
            script.extend(step.run.iter().cloned());
            let mut root = sandbox_for(sandbox, options, store, reporter)
                .and_then(|s| s.root(&below))
                .map_err(sandbox_error(&step.name))?;
            let mut command = sandbox::Command::shell(&(script.join("\n") + "\n"));
            // Nothing from the host: dpkg's variables, `SOURCE_DATE_EPOCH`, a plain `PATH`.
            command.env = debian::configure_env(options.layer.source_date_epoch);
            command.network = sandbox::Network::None;
            command.timeout = Some(STEP_TIMEOUT);
            let mut tail = Tail::default();
            let status = root
                .run(&command, &mut |_, line| {
                    tail.push(line);
                    reporter.event(Event::Output { line });
                })
                .map_err(sandbox_error(&step.name))?;
            if !status.success() {
                return Err(BaseError::StepFailed {
                    base: what.to_owned(),
                    step: step.name.clone(),
                    status: status.to_string(),
                    tail: tail.text(),
                });
            }
            root.commit(&options.layer)
                .map_err(sandbox_error(&step.name))
        };
        let layer = self
            .cache
            .step(store, &run_key, &label, reporter, make, cache_error)?;
        chain.layers.push(layer);
        chain.key = run_key;
        Ok(())
    }
}

fn only_layers(layers: &[(String, oci::Layer, bool)]) -> Vec<oci::Layer> {
    layers.iter().map(|(_, l, _)| l.clone()).collect()
}

/// The sandbox, made the first time a step has to run (a fully cached base needs none);
/// what it has to say (a fallback id mapping) is said then.
fn sandbox_for<'s>(
    slot: &'s mut Option<Sandbox>,
    options: &BaseOptions,
    store: &BlobStore,
    reporter: &mut dyn Reporter,
) -> Result<&'s Sandbox, sandbox::Error> {
    if slot.is_none() {
        let sandbox = Sandbox::new(&options.cache_dir.join("sandbox"), store)?;
        for message in sandbox.warnings() {
            reporter.event(Event::Warning { message });
        }
        *slot = Some(sandbox);
    }
    Ok(slot.as_ref().expect("just set"))
}

fn cache_error(path: PathBuf, source: std::io::Error) -> BaseError {
    BaseError::Cache { path, source }
}

/// A key from a parent key and parts, each part delimited so that no two lists collide.
pub fn key_of(parent: &str, parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(parent.as_bytes());
    for part in parts {
        hasher.update([0]);
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The last lines a step printed, for the error when it fails.
#[derive(Default)]
pub struct Tail(std::collections::VecDeque<String>);

impl Tail {
    const LINES: usize = 20;

    pub fn push(&mut self, line: &str) {
        if self.0.len() == Self::LINES {
            self.0.pop_front();
        }
        self.0.push_back(line.to_owned());
    }

    pub fn text(&self) -> String {
        let lines: Vec<&str> = self.0.iter().map(|l| l.as_str()).collect();
        format!("  {}", lines.join("\n  "))
    }
}
