//! Installing Debian packages onto a [`Chain`]: the steps of a base, and an app's packages.
//! A step with packages gives two layers: the unpacked packages with their dpkg database,
//! then what their maintainer scripts and the step's commands changed, run as root in the
//! sandbox with no network.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{key_of, sandbox_for, BaseOptions, Chain, LayerCache, Tail};
use crate::{Event, Reporter};
use nua_debian as debian;
use nua_oci::BlobStore;
use nua_sandbox as sandbox;

/// The name of the first step of every base.
pub const BOOTSTRAP: &str = "bootstrap";

/// Maintainer scripts and layer commands get this long before they are killed.
const STEP_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// One step of packages and commands (a step of a base, or an app's packages).
#[derive(Debug, Clone)]
pub struct PlannedStep {
    /// `bootstrap` or a layer name.
    pub name: String,
    /// Exact packages to install, sorted by name.
    pub packages: Vec<debian::Locked>,
    /// Shell commands run as root before the packages' maintainer scripts (the files of
    /// a layer recipe are written by such commands).
    pub before: Vec<String>,
    /// Shell commands run as root after the packages are configured.
    pub run: Vec<String>,
}

/// What can go wrong installing packages; `what` is the base or app they are for.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot resolve the packages of `{what}`, step `{step}`")]
    Debian {
        what: String,
        step: String,
        #[source]
        source: Box<debian::Error>,
    },
    #[error("the sandbox cannot run step `{step}` of `{what}`")]
    Sandbox {
        what: String,
        step: String,
        #[source]
        source: Box<sandbox::Error>,
    },
    #[error("step `{step}` of `{what}` failed ({status}); its last lines:\n{tail}")]
    StepFailed {
        what: String,
        step: String,
        status: String,
        tail: String,
    },
    #[error(
        "step `{step}` of `{what}` installs Debian packages, and what it builds on is not \
         a Debian image"
    )]
    NoSource { what: String, step: String },
    #[error("the mirror no longer has `{url}`, which `{what}` needs")]
    PackageGone { what: String, url: String },
    #[error("cannot write the layer cache in `{}`", path.display())]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl InstallError {
    /// What the user can do about it, when there is something (its cause's hint).
    pub fn hint(&self) -> Option<String> {
        match self {
            InstallError::Debian { source, .. } => source.hint(),
            InstallError::Sandbox { source, .. } => source.hint(),
            InstallError::StepFailed { .. }
            | InstallError::PackageGone { .. }
            | InstallError::NoSource { .. }
            | InstallError::Cache { .. } => None,
        }
    }
}

/// Installs Debian packages onto a [`Chain`]: a base's steps, or an app's packages.
pub struct Installer<'a> {
    /// What the packages are for (a base or app name), for errors.
    pub what: &'a str,
    /// Where packages come from; `None` on an image that is not Debian (no packages).
    pub source: Option<&'a debian::Source>,
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
    ) -> Result<(), InstallError> {
        let has_packages = !step.packages.is_empty();
        if has_packages {
            self.source(&step.name)?;
            self.unpack(step, prefix, chain, reporter)?;
        }
        if !has_packages && step.run.is_empty() && step.before.is_empty() {
            return Ok(());
        }
        self.configure(step, prefix, chain, reporter)
    }

    /// The layer of `step`'s packages unpacked over `chain`, with the dpkg database.
    fn unpack(
        &self,
        step: &PlannedStep,
        prefix: &str,
        chain: &mut Chain,
        reporter: &mut dyn Reporter,
    ) -> Result<(), InstallError> {
        let (store, options) = (self.store, self.options);
        let bootstrap = step.name == BOOTSTRAP;
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
            self.fetch(step, reporter)?;
            // Packages over a root are added to its dpkg database.
            let status = if bootstrap {
                None
            } else {
                let root = sandbox_for(sandbox, options, store, reporter)
                    .and_then(|s| s.root(&below))
                    .map_err(self.sandbox_error(&step.name))?;
                root.read_file("/var/lib/dpkg/status")
                    .map_err(self.sandbox_error(&step.name))?
            };
            debian::unpack_layer(
                &step.packages,
                store,
                status.as_deref(),
                self.source(&step.name)?,
                &options.layer,
            )
            .map_err(self.debian_error(&step.name))
        };
        let layer = self
            .cache
            .step(store, &unpack_key, &label, reporter, make, cache_error)?;
        chain.layers.push(layer);
        chain.key = unpack_key;
        Ok(())
    }

    /// The layer of what the maintainer scripts of `step`'s packages (already unpacked on
    /// `chain`, if any) and its commands change.
    fn configure(
        &self,
        step: &PlannedStep,
        prefix: &str,
        chain: &mut Chain,
        reporter: &mut dyn Reporter,
    ) -> Result<(), InstallError> {
        let has_packages = !step.packages.is_empty();
        // The packages are in the parent key already; the configure script follows from them.
        let label = if has_packages {
            format!("{prefix}{}: configure", step.name)
        } else {
            format!("{prefix}{}", step.name)
        };
        let (has, run) = (has_packages.to_string(), step.run.join("\n"));
        let before = step.before.join("\n");
        // A step with no `before` keeps the key it had before `before` existed.
        let run_key = if step.before.is_empty() {
            key_of(&chain.key, &["run", &has, &run])
        } else {
            key_of(&chain.key, &["run", &has, &run, "before", &before])
        };
        let below = chain.only_layers();
        let sandbox = &mut chain.sandbox;
        let make = |reporter: &mut dyn Reporter| {
            let mut script = vec!["set -e".to_owned()];
            script.extend(step.before.iter().cloned());
            if has_packages {
                self.fetch(step, reporter)?;
                script.push(
                    debian::configure_script(&step.packages, self.store)
                        .map_err(self.debian_error(&step.name))?,
                );
            }
            script.extend(step.run.iter().cloned());
            let mut root = sandbox_for(sandbox, self.options, self.store, reporter)
                .and_then(|s| s.root(&below))
                .map_err(self.sandbox_error(&step.name))?;
            self.run_script(&mut root, &step.name, &script, reporter)?;
            root.commit(&self.options.layer)
                .map_err(self.sandbox_error(&step.name))
        };
        let layer = self
            .cache
            .step(self.store, &run_key, &label, reporter, make, cache_error)?;
        chain.layers.push(layer);
        chain.key = run_key;
        Ok(())
    }

    /// Run `script` as root in `root` with nothing from the host: dpkg's variables,
    /// `SOURCE_DATE_EPOCH`, a plain `PATH`, no network.
    fn run_script(
        &self,
        root: &mut sandbox::Root,
        step: &str,
        script: &[String],
        reporter: &mut dyn Reporter,
    ) -> Result<(), InstallError> {
        let mut command = sandbox::Command::shell(&(script.join("\n") + "\n"));
        command.env = debian::configure_env(self.options.layer.source_date_epoch);
        command.network = sandbox::Network::None;
        command.timeout = Some(STEP_TIMEOUT);
        let mut tail = Tail::default();
        let status = root
            .run(&command, &mut |_, line| {
                tail.push(line);
                reporter.event(Event::Output { line });
            })
            .map_err(self.sandbox_error(step))?;
        if !status.success() {
            return Err(InstallError::StepFailed {
                what: self.what.to_owned(),
                step: step.to_owned(),
                status: status.to_string(),
                tail: tail.text(),
            });
        }
        Ok(())
    }

    /// Fetch the packages of `step` that are not in the store yet (a cached layer may need
    /// its packages again when the layer above it is not cached), and say how much came
    /// over the network.
    fn fetch(&self, step: &PlannedStep, reporter: &mut dyn Reporter) -> Result<(), InstallError> {
        let (count, bytes) = (AtomicU64::new(0), AtomicU64::new(0));
        let source = self.source(&step.name)?;
        debian::download(source, &step.packages, self.store, &|event| {
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
            } => InstallError::PackageGone {
                what: self.what.to_owned(),
                url,
            },
            other => self.debian_error(&step.name)(other),
        })?;
        let count = count.into_inner();
        if count > 0 {
            let line = format!(
                "fetched {count} packages ({:.1} MB) from {}",
                bytes.into_inner() as f64 / 1e6,
                source.mirror
            );
            reporter.event(Event::Output { line: &line });
        }
        Ok(())
    }

    /// The Debian source packages come from; an error when there is none.
    fn source(&self, step: &str) -> Result<&debian::Source, InstallError> {
        self.source.ok_or_else(|| InstallError::NoSource {
            what: self.what.to_owned(),
            step: step.to_owned(),
        })
    }

    fn sandbox_error(&self, step: &str) -> impl Fn(sandbox::Error) -> InstallError {
        let (what, step) = (self.what.to_owned(), step.to_owned());
        move |source| InstallError::Sandbox {
            what: what.clone(),
            step: step.clone(),
            source: Box::new(source),
        }
    }

    fn debian_error(&self, step: &str) -> impl Fn(debian::Error) -> InstallError {
        let (what, step) = (self.what.to_owned(), step.to_owned());
        move |source| InstallError::Debian {
            what: what.clone(),
            step: step.clone(),
            source: Box::new(source),
        }
    }
}

fn cache_error(path: PathBuf, source: std::io::Error) -> InstallError {
    InstallError::Cache { path, source }
}
