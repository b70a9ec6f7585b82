//! The executor of a `build`-method app: its [`AppPlan`] turned into layers above its base,
//! each taken from the cache when its key is known.
//!
//! Order: run packages (kept) → build packages (only while building) → dependencies (from
//! the manifests alone, so a source edit keeps them) → source → build commands → the app's
//! `nua/` files → metadata (with the SBOM of what the image holds) → tests. The layers of
//! the build packages are below every later step while building, and left out of the image.
//! When the source is the last layer made, the image has the metadata layer just below it:
//! the layer an edit changes is then the top one, and the only one Docker registers anew.

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::base::{BaseError, BaseImage};
use super::fetch;
use super::layers::{
    key_of, only_layers, write_file, BaseOptions, Chain, Explain, InstallError, Installer,
    LayerCache, LayerSummary, PlannedStep,
};
use super::plan::Origin;
use super::plan::{AppPlan, Dependencies, DEPS_DIR, NUA_DIR_MOUNT};
use super::run::{self, Job, World};
use super::steps::{self, Step};
use super::why::{self, History, Inputs};
use super::{source_layer, uv, BuildOptions, Error, Event, Reporter};
use nua_config::Loaded;
use nua_debian as debian;
use nua_oci as oci;
use nua_sandbox::Bind;

/// Bump when what an app step writes changes for the same inputs.
pub const APP_FORMAT: &str = "nua-app-v1";

/// How the steps on one side of the source run: their layers' options (the time they are
/// clamped to) and their commands' world.
pub struct Stage {
    pub options: BaseOptions,
    pub world: World,
}

/// What every step of one build shares.
pub struct Build<'a> {
    pub app: &'a Loaded,
    pub options: &'a BuildOptions,
    pub store: &'a oci::BlobStore,
    pub cache: &'a LayerCache,
    pub history: History,
    /// The steps below the source (packages, dependencies) take the base's date, so that a
    /// new commit of the app, which moves `SOURCE_DATE_EPOCH`, keeps them.
    pub below: Stage,
    /// The source and the steps above it take the app's `SOURCE_DATE_EPOCH`.
    pub above: Stage,
    /// The distribution of the base, as the SBOM names it (`debian-12`).
    pub distro: String,
    /// The image's variables (`KEY=VALUE`), which its tests run with.
    pub image_env: Vec<String>,
}

impl Build<'_> {
    pub fn cache_error(path: PathBuf, source: std::io::Error) -> Error {
        Error::Cache { path, source }
    }

    /// A layer step made by running `jobs` as `stage` says, cached under its inputs.
    #[allow(clippy::too_many_arguments)]
    fn command_step(
        &self,
        chain: &mut Chain,
        stage: &Stage,
        step: &str,
        jobs: &[Job<'_>],
        mut inputs: Inputs,
        extra: &dyn Fn() -> Result<Vec<Bind>, Error>,
        reporter: &mut dyn Reporter,
    ) -> Result<(), Error> {
        let commands: Vec<String> = jobs
            .iter()
            .map(|j| format!("{}{}", if j.as_root { "# " } else { "$ " }, j.command))
            .collect();
        inputs.insert(
            "commands".into(),
            why::digest(commands.join("\n").as_bytes()),
        );
        for (name, value) in stage.world.key_env() {
            inputs.insert(format!("env:{name}"), why::digest(value.as_bytes()));
        }
        let parts: Vec<String> = inputs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut key_parts = vec![APP_FORMAT, step];
        key_parts.extend(parts.iter().map(String::as_str));
        let key = key_of(&chain.key, &key_parts);
        self.explained_step(chain, key, step, &inputs, reporter, |chain, reporter| {
            // Only a step that runs needs what it mounts (uv is fetched then).
            let extra = extra()?;
            run::layer_step(
                chain,
                &stage.options,
                self.store,
                &stage.world,
                step,
                jobs,
                &extra,
                reporter,
            )
        })?;
        Ok(())
    }

    /// A layer of `chain` taken from the cache under `key`, else made by `make`; when made,
    /// `inputs` say why (`--why`). The layer goes on `chain`, which `make` may use (for its
    /// sandbox).
    pub fn explained_step(
        &self,
        chain: &mut Chain,
        key: String,
        step: &str,
        inputs: &Inputs,
        reporter: &mut dyn Reporter,
        make: impl FnOnce(&mut Chain, &mut dyn Reporter) -> Result<oci::Layer, Error>,
    ) -> Result<LayerSummary, Error> {
        let parent = chain.key.clone();
        let explain = Explain {
            history: &self.history,
            parent: &parent,
            inputs,
        };
        let made = self.cache.step_explained(
            self.store,
            &key,
            step,
            Some(explain),
            reporter,
            |reporter| make(chain, reporter),
            Self::cache_error,
        )?;
        chain.layers.push(made.clone());
        chain.key = key;
        Ok(made)
    }

    /// Resolve `names` against what `installed` holds, from the base's Debian source;
    /// remembered per parent key so a cached build needs no network (the file's time says
    /// when a build last used it, for `cache prune`). `fresh` ignores what was remembered.
    fn resolve(
        &self,
        base: &BaseImage,
        names: &[String],
        installed: &[debian::Locked],
        parent: &str,
        step: &str,
        fresh: bool,
    ) -> Result<Vec<debian::Locked>, Error> {
        let key = key_of(parent, &["resolve", &names.join(" ")]);
        let dir = self.options.cache_dir.join("resolved");
        let file = dir.join(format!("{key}.json"));
        if !self.options.no_cache && !fresh {
            if let Some(found) = fs_err::read(&file)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            {
                if let Ok(f) = std::fs::File::options().append(true).open(&file) {
                    let _ = f.set_modified(std::time::SystemTime::now());
                }
                return Ok(found);
            }
        }
        let packages_error = |source| Error::Packages {
            step: step.to_owned(),
            names: names.join(" "),
            source: Box::new(source),
        };
        let source = base.source.as_ref().expect("checked by `package_layers`");
        let index = debian::fetch_index(source, self.store).map_err(packages_error)?;
        // What an image from a registry holds, then what Nua installed.
        let mut present = base.installed.clone();
        present.extend(installed.iter().map(|p| index.installed(p)));
        let request = debian::Request {
            include: names.to_vec(),
            essential: false,
            required: false,
        };
        let resolved = index.resolve(&request, &present).map_err(packages_error)?;
        serde_json::to_vec(&resolved)
            .map_err(std::io::Error::from)
            .and_then(|bytes| write_file(&file, &bytes))
            .map_err(|source| Error::Cache {
                path: dir.clone(),
                source,
            })?;
        Ok(resolved)
    }

    /// Install the Debian packages `names` as step `name` (an unpack and a configure layer)
    /// and say which packages that added. When the mirror dropped a version remembered
    /// from an earlier resolution (Debian point releases do), they are resolved again.
    fn packages_step(
        &self,
        base: &BaseImage,
        chain: &mut Chain,
        name: &str,
        names: &[String],
        installed: &[debian::Locked],
        reporter: &mut dyn Reporter,
    ) -> Result<Vec<debian::Locked>, Error> {
        let installer = Installer {
            what: self.app.config.id(),
            source: base.source.as_ref(),
            store: self.store,
            options: &self.below.options,
            cache: self.cache,
        };
        let parent = chain.key.clone();
        let mut fresh = false;
        loop {
            let packages = self.resolve(base, names, installed, &parent, name, fresh)?;
            let step = PlannedStep {
                name: name.to_owned(),
                packages,
                before: Vec::new(),
                run: Vec::new(),
            };
            match installer.install(&step, "", chain, reporter) {
                Err(InstallError::PackageGone { url, .. }) if !fresh => {
                    let message = format!(
                        "the mirror no longer has `{url}`: resolving the packages of step \
                         `{name}` again"
                    );
                    reporter.event(Event::Warning { message: &message });
                    fresh = true;
                }
                Err(err) => return Err(BaseError::from(err).into()),
                Ok(()) => return Ok(step.packages),
            }
        }
    }
}

/// Build every layer of `plan` above `base`.
pub fn build_layers(
    build: &Build<'_>,
    plan: &AppPlan,
    mut base: BaseImage,
    reporter: &mut dyn Reporter,
) -> Result<Vec<LayerSummary>, Error> {
    // The base's key covers its layers and date; the app's layers add their compression.
    let mut chain = Chain {
        layers: base.layers.clone(),
        key: key_of(
            &base.key,
            &[APP_FORMAT, &build.options.compression.cache_name()],
        ),
        sandbox: base.sandbox.take(),
    };
    let build_only = build.package_layers(plan, &base, &mut chain, reporter)?;

    let app = build.app;
    let project = plan
        .project
        .as_deref()
        .filter(|p| !p.is_empty() && *p != ".");
    // The local source (its `project` folder is only looked for when the source is local).
    let src_dir = || {
        fetch::project_dir(&app.root, project).map_err(|source| Error::Fetch {
            source: Box::new(source),
        })
    };
    if let Some(deps) = &plan.dependencies {
        build.dependencies_step(&mut chain, deps, &src_dir()?, reporter)?;
    }
    match &plan.origin {
        Origin::Local => source_layer::local(build, &mut chain, src_dir()?, reporter)?,
        remote => source_layer::fetched(build, &mut chain, remote, plan, reporter)?,
    }
    if !plan.build.is_empty() {
        build.build_step(&mut chain, plan, reporter)?;
    }

    let mut layers = chain.layers.clone();
    layers.drain(build_only);
    if let Some(dir) = &plan.nua_dir {
        layers.extend(build.nua_files_step(&mut chain, dir, reporter)?);
    }
    let metadata = build.metadata_step(&mut chain, &layers, reporter)?;
    match layers.last() {
        // The source is the top layer, the one an edit changes: the metadata goes below it,
        // so that an edit is one new layer for Docker to register (its SBOM, made from every
        // layer, source included, keeps its bytes when the source installs no package).
        Some(top) if top.step == Step::Source.name() => layers.insert(layers.len() - 1, metadata),
        _ => layers.push(metadata),
    }
    let image_key = chain.key.clone();
    super::finish::test_step(build, plan, &mut chain, &layers, &image_key, reporter)?;
    Ok(layers)
}

impl Build<'_> {
    /// The layers of the app's Debian packages: those it runs with, then those it only
    /// builds with, whose range in `chain` is returned (they are left out of the image).
    fn package_layers(
        &self,
        plan: &AppPlan,
        base: &BaseImage,
        chain: &mut Chain,
        reporter: &mut dyn Reporter,
    ) -> Result<Range<usize>, Error> {
        if base.source.is_none() {
            let wanted = [
                ("run.packages", &plan.packages),
                ("build.packages", &plan.build_packages),
            ];
            if let Some((key, _)) = wanted.iter().find(|(_, names)| !names.is_empty()) {
                return Err(Error::PackagesNeedDebian {
                    file: self.app.file.clone(),
                    key,
                    base: base.name.clone(),
                    distro: base.distro.clone(),
                });
            }
        }
        let mut installed = base.packages.clone();
        if !plan.packages.is_empty() {
            let added = self.packages_step(
                base,
                chain,
                "packages",
                &plan.packages,
                &installed,
                reporter,
            )?;
            installed.extend(added);
        }
        if plan.build_packages.is_empty() {
            return Ok(0..0);
        }
        let start = chain.layers.len();
        self.packages_step(
            base,
            chain,
            "build-packages",
            &plan.build_packages,
            &installed,
            reporter,
        )?;
        Ok(start..chain.layers.len())
    }

    /// The dependencies layer: its commands run with only the manifests of `src_dir`
    /// (bound read-only), so that an edit of the source keeps it.
    fn dependencies_step(
        &self,
        chain: &mut Chain,
        deps: &Dependencies,
        src_dir: &Path,
        reporter: &mut dyn Reporter,
    ) -> Result<(), Error> {
        let mut inputs = Inputs::new();
        let mut binds = Vec::new();
        for file in &deps.files {
            let path = src_dir.join(file);
            // Only the app's own files: a link could bind anything of the machine.
            if fs_err::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(Error::Read {
                    path,
                    source: std::io::Error::other(
                        "a dependency manifest must be a file of the app, not a link",
                    ),
                });
            }
            let bytes = fs_err::read(&path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            inputs.insert(format!("file:{file}"), why::digest(&bytes));
            binds.push(Bind::read_only(path, format!("{DEPS_DIR}/{file}")));
        }
        let uv = deps
            .requirements
            .as_deref()
            .filter(|_| uv::usable(self.options.installer, &self.image_env))
            .map(uv::install_command);
        let commands = match &uv {
            Some(command) => std::slice::from_ref(command),
            None => deps.commands.as_slice(),
        };
        let jobs: Vec<Job<'_>> = commands
            .iter()
            .map(|command| Job {
                command,
                as_root: false,
                shown: true,
            })
            .collect();
        let extra = || {
            let mut binds = binds.clone();
            if uv.is_some() {
                binds.push(uv::bind(&self.options.cache_dir)?);
            }
            Ok(binds)
        };
        self.command_step(
            chain,
            &self.below,
            "dependencies",
            &jobs,
            inputs,
            &extra,
            reporter,
        )
    }

    /// The layer of the build commands, run on the source.
    fn build_step(
        &self,
        chain: &mut Chain,
        plan: &AppPlan,
        reporter: &mut dyn Reporter,
    ) -> Result<(), Error> {
        let jobs: Vec<Job<'_>> = plan
            .build
            .iter()
            .map(|s| Job {
                command: &s.command,
                as_root: s.as_root,
                shown: true,
            })
            .collect();
        let mut inputs = Inputs::new();
        let mut binds = Vec::new();
        if let (Some(dir), true) = (&plan.nua_dir, plan.uses_build_py()) {
            // `build.py` and what it may read next to it, but the nua-config: a new version
            // number does not make the build run again.
            let files = |rel: &Path, is_dir: bool| {
                is_dir || !rel.to_string_lossy().starts_with("nua-config.")
            };
            inputs.extend(why::tree_inputs(dir, &files).map_err(|source| Error::Read {
                path: dir.clone(),
                source,
            })?);
            binds.push(Bind::read_only(dir, NUA_DIR_MOUNT));
        }
        let extra = || Ok(binds.clone());
        self.command_step(chain, &self.above, "build", &jobs, inputs, &extra, reporter)
    }

    /// The layer of the files of the app's `nua/` folder `dir`, if it has any.
    fn nua_files_step(
        &self,
        chain: &mut Chain,
        dir: &Path,
        reporter: &mut dyn Reporter,
    ) -> Result<Option<LayerSummary>, Error> {
        let has_files = why::tree_inputs(dir, &|rel, is_dir| steps::nua_file_included(rel, is_dir))
            .map(|files| !files.is_empty())
            .unwrap_or(true);
        if !has_files {
            return Ok(None);
        }
        let ctx = source_layer::context(self, self.app.root.clone())?;
        let key = Step::NuaFiles.cache_key(&ctx, &chain.key)?;
        let made = self.cache.step(
            self.store,
            &key,
            Step::NuaFiles.name(),
            reporter,
            |_| Step::NuaFiles.run(&ctx, None),
            Build::cache_error,
        )?;
        chain.layers.push(made.clone());
        chain.key = key;
        Ok(Some(made))
    }

    /// The metadata layer, with the SBOM of `kept`, the layers the image keeps.
    fn metadata_step(
        &self,
        chain: &mut Chain,
        kept: &[LayerSummary],
        reporter: &mut dyn Reporter,
    ) -> Result<LayerSummary, Error> {
        let ctx = source_layer::context(self, self.app.root.clone())?;
        let key = Step::Metadata.cache_key(&ctx, &chain.key)?;
        let kept = only_layers(kept);
        let config = &self.app.config;
        let inputs: Inputs = [
            (
                "nua-config".to_owned(),
                why::digest(&super::metadata::config_json(config)),
            ),
            (
                "start commands".to_owned(),
                why::digest(config.start_commands().join("\n").as_bytes()),
            ),
        ]
        .into();
        self.explained_step(
            chain,
            key,
            Step::Metadata.name(),
            &inputs,
            reporter,
            |chain, reporter| {
                let sbom = super::finish::sbom_of(self, chain, &kept, reporter)?;
                Step::Metadata.run(&ctx, Some(&sbom))
            },
        )
    }
}
