//! The executor of a `build`-method app: its [`AppPlan`] turned into layers above its base,
//! each taken from the cache when its key is known.
//!
//! Order: run packages (kept) → build packages (only while building) → dependencies (from
//! the manifests alone, so a source edit keeps them) → source → build commands → the app's
//! `nua/` files → metadata (with the SBOM of what the image holds) → tests. The layers of
//! the build packages are below every later step while building, and left out of the image.

use std::path::{Path, PathBuf};

use super::base::{key_of, BaseImage, BaseOptions, Chain, Installer, PlannedStep};
use super::cache::{Explain, LayerCache};
use super::fetch::{self, Origin};
use super::plan::{AppPlan, DEPS_DIR, NUA_DIR_MOUNT};
use super::run::{self, Job, World};
use super::steps::{self, Step};
use super::why::{self, History, Inputs};
use super::{sbom, BuildOptions, Error, Event, Reporter, SourceFilter};
use crate::config::Loaded;
use crate::debian;
use crate::oci;
use crate::sandbox::{Bind, Network};

/// Bump when what an app step writes changes for the same inputs.
const APP_FORMAT: &str = "nua-app-v1";

/// What every step of one build shares.
pub struct Build<'a> {
    pub app: &'a Loaded,
    pub options: &'a BuildOptions,
    pub store: &'a oci::BlobStore,
    pub cache: &'a LayerCache,
    pub history: History,
    pub sandbox_options: BaseOptions,
    pub world: World,
    /// The distribution of the base, as the SBOM names it (`debian-12`).
    pub distro: String,
}

impl Build<'_> {
    fn cache_error(path: PathBuf, source: std::io::Error) -> Error {
        Error::Cache { path, source }
    }

    /// A layer step made by running `jobs`, cached under its inputs.
    fn command_step(
        &self,
        chain: &mut Chain,
        step: &str,
        jobs: &[Job<'_>],
        mut inputs: Inputs,
        extra: &[Bind],
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
        inputs.insert(
            "environment".into(),
            why::digest(self.env_text().as_bytes()),
        );
        let parts: Vec<String> = inputs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut key_parts = vec![APP_FORMAT, step];
        key_parts.extend(parts.iter().map(String::as_str));
        let key = key_of(&chain.key, &key_parts);
        let parent = chain.key.clone();
        let explain = Explain {
            history: &self.history,
            parent: &parent,
            inputs: &inputs,
        };
        let made = self.cache.step_explained(
            self.store,
            &key,
            step,
            Some(explain),
            reporter,
            |reporter| {
                run::layer_step(
                    chain,
                    &self.sandbox_options,
                    self.store,
                    &self.world,
                    step,
                    jobs,
                    extra,
                    reporter,
                )
            },
            Self::cache_error,
        )?;
        chain.layers.push(made);
        chain.key = key;
        Ok(())
    }

    /// The variables commands see, minus the host-specific ones (the CA bundle's path is
    /// fixed, its content is not an input: it changes nothing the image should keep).
    fn env_text(&self) -> String {
        let mut env: Vec<String> = self
            .world
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        env.sort();
        env.join("\n")
    }

    /// Resolve `names` against what `installed` holds, from the base's Debian source;
    /// remembered per parent key so a cached build needs no network.
    fn resolve(
        &self,
        base: &BaseImage,
        names: &[String],
        installed: &[debian::Locked],
        parent: &str,
        step: &str,
    ) -> Result<Vec<debian::Locked>, Error> {
        let key = key_of(parent, &["resolve", &names.join(" ")]);
        let dir = self.options.cache_dir.join("resolved");
        let file = dir.join(format!("{key}.json"));
        if !self.options.no_cache {
            if let Some(found) = fs_err::read(&file)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            {
                return Ok(found);
            }
        }
        let packages_error = |source| Error::Packages {
            step: step.to_owned(),
            names: names.join(" "),
            source: Box::new(source),
        };
        let index = debian::fetch_index(&base.source, self.store).map_err(packages_error)?;
        let present: Vec<debian::Installed> =
            installed.iter().map(|p| index.installed(p)).collect();
        let request = debian::Request {
            include: names.to_vec(),
            essential: false,
            required: false,
        };
        let resolved = index.resolve(&request, &present).map_err(packages_error)?;
        let write = || -> std::io::Result<()> {
            fs_err::create_dir_all(&dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
            serde_json::to_writer(&mut tmp, &resolved)?;
            tmp.persist(&file).map_err(|e| e.error)?;
            Ok(())
        };
        write().map_err(|source| Error::Cache {
            path: dir.clone(),
            source,
        })?;
        Ok(resolved)
    }

    /// Install Debian `packages` as step `name` (an unpack and a configure layer).
    fn install(
        &self,
        base: &BaseImage,
        chain: &mut Chain,
        name: &str,
        packages: Vec<debian::Locked>,
        reporter: &mut dyn Reporter,
    ) -> Result<(), Error> {
        let installer = Installer {
            what: self.app.config.id(),
            source: &base.source,
            store: self.store,
            options: &self.sandbox_options,
            cache: if self.options.no_cache {
                LayerCache::new(&self.options.cache_dir).write_only()
            } else {
                LayerCache::new(&self.options.cache_dir)
            },
        };
        let step = PlannedStep {
            name: name.to_owned(),
            packages,
            run: Vec::new(),
        };
        installer.install(&step, "", chain, reporter)?;
        Ok(())
    }
}

/// Build every layer of `plan` above `base`.
pub fn build_layers(
    build: &Build<'_>,
    plan: &AppPlan,
    mut base: BaseImage,
    reporter: &mut dyn Reporter,
) -> Result<Vec<(String, oci::Layer, bool)>, Error> {
    let mut chain = Chain {
        layers: base.layers.clone(),
        key: base.key.clone(),
        sandbox: base.sandbox.take(),
    };
    let mut installed = base.packages.clone();
    if !plan.packages.is_empty() {
        let key = chain.key.clone();
        let packages = build.resolve(&base, &plan.packages, &installed, &key, "packages")?;
        installed.extend(packages.iter().cloned());
        build.install(&base, &mut chain, "packages", packages, reporter)?;
    }
    let build_only = if plan.build_packages.is_empty() {
        0..0
    } else {
        let start = chain.layers.len();
        let key = chain.key.clone();
        let packages = build.resolve(
            &base,
            &plan.build_packages,
            &installed,
            &key,
            "build-packages",
        )?;
        build.install(&base, &mut chain, "build-packages", packages, reporter)?;
        start..chain.layers.len()
    };

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
        let src_dir = src_dir()?;
        let mut inputs = Inputs::new();
        let mut binds = Vec::new();
        for file in &deps.files {
            let path = src_dir.join(file);
            let bytes = fs_err::read(&path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            inputs.insert(format!("file:{file}"), why::digest(&bytes));
            binds.push(Bind::read_only(path, format!("{DEPS_DIR}/{file}")));
        }
        let jobs: Vec<Job<'_>> = deps
            .commands
            .iter()
            .map(|command| Job {
                command,
                as_root: false,
                shown: true,
            })
            .collect();
        build.command_step(&mut chain, "dependencies", &jobs, inputs, &binds, reporter)?;
    }

    match &plan.origin {
        Origin::Local => source_step(build, &mut chain, src_dir()?, reporter)?,
        remote => fetched_source_step(build, &mut chain, remote, plan, reporter)?,
    }

    if !plan.build.is_empty() {
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
        if let Some(dir) = &plan.nua_dir {
            // `build.py` and what it may read next to it.
            let all = |_: &Path, _: bool| true;
            inputs.extend(why::tree_inputs(dir, &all).map_err(|source| Error::Read {
                path: dir.clone(),
                source,
            })?);
            binds.push(Bind::read_only(dir, NUA_DIR_MOUNT));
        }
        build.command_step(&mut chain, "build", &jobs, inputs, &binds, reporter)?;
    }

    let mut layers = chain.layers.clone();
    layers.drain(build_only);
    if let Some(dir) = &plan.nua_dir {
        let has_files = why::tree_inputs(dir, &|rel, is_dir| steps::nua_file_included(rel, is_dir))
            .map(|files| !files.is_empty())
            .unwrap_or(true);
        if has_files {
            let ctx = context(build, app.root.clone())?;
            let key = Step::NuaFiles.cache_key(&ctx, &chain.key)?;
            let made = build.cache.step(
                build.store,
                &key,
                Step::NuaFiles.name(),
                reporter,
                |_| Step::NuaFiles.run(&ctx, None),
                Build::cache_error,
            )?;
            chain.layers.push(made.clone());
            layers.push(made);
            chain.key = key;
        }
    }

    // Metadata, with the SBOM of the layers the image keeps.
    let ctx = context(build, app.root.clone())?;
    let key = Step::Metadata.cache_key(&ctx, &chain.key)?;
    let kept: Vec<oci::Layer> = layers.iter().map(|(_, l, _)| l.clone()).collect();
    let config = &app.config;
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
    let parent = chain.key.clone();
    let explain = Explain {
        history: &build.history,
        parent: &parent,
        inputs: &inputs,
    };
    let made = build.cache.step_explained(
        build.store,
        &key,
        Step::Metadata.name(),
        Some(explain),
        reporter,
        |reporter| {
            let sbom = sbom_of(build, &mut chain, &kept, reporter)?;
            Step::Metadata.run(&ctx, Some(&sbom))
        },
        Build::cache_error,
    )?;
    layers.push(made);
    test_step(build, plan, &mut chain, &layers, &key, reporter)?;
    Ok(layers)
}

fn context<'a>(build: &Build<'a>, src_dir: PathBuf) -> Result<steps::Context<'a>, Error> {
    let filter = SourceFilter::new(&src_dir)?.excluding(&src_dir, build.options.output.path());
    Ok(steps::Context {
        app: build.app,
        store: build.store,
        options: build.options,
        src_dir,
        filter,
    })
}

/// The source layer of the folder `src_dir`.
pub fn source_step(
    build: &Build<'_>,
    chain: &mut Chain,
    src_dir: PathBuf,
    reporter: &mut dyn Reporter,
) -> Result<(), Error> {
    if !src_dir.is_dir() {
        return Err(Error::Project {
            path: src_dir,
            project: build.app.config.build.project.clone().unwrap_or_default(),
        });
    }
    let ctx = context(build, src_dir)?;
    let key = Step::Source.cache_key(&ctx, &chain.key)?;
    let include = |rel: &Path, is_dir: bool| ctx.filter.includes(rel, is_dir);
    let inputs = why::tree_inputs(&ctx.src_dir, &include).map_err(|source| Error::Read {
        path: ctx.src_dir.clone(),
        source,
    })?;
    let parent = chain.key.clone();
    let explain = Explain {
        history: &build.history,
        parent: &parent,
        inputs: &inputs,
    };
    let made = build.cache.step_explained(
        build.store,
        &key,
        Step::Source.name(),
        Some(explain),
        reporter,
        |_| Step::Source.run(&ctx, None),
        Build::cache_error,
    )?;
    chain.layers.push(made);
    chain.key = key;
    Ok(())
}

/// The source layer of a `src-url` archive or `git-url` repository. When the content can
/// be named before fetching (a `src-checksum`, a git commit), a cached layer needs no
/// download; else the archive is fetched and its tree decides.
fn fetched_source_step(
    build: &Build<'_>,
    chain: &mut Chain,
    origin: &Origin,
    plan: &AppPlan,
    reporter: &mut dyn Reporter,
) -> Result<(), Error> {
    let fetch_error = |source| Error::Fetch {
        source: Box::new(source),
    };
    let work_dir = build.options.cache_dir.join("sources");
    let store = build.store;
    let project = plan
        .project
        .as_deref()
        .filter(|p| !p.is_empty() && *p != ".");
    let Some(identity) = fetch::pin(origin).map_err(fetch_error)? else {
        // An archive without a checksum: fetched every time, keyed by its content.
        let fetched = fetch::fetch(origin, &work_dir, store).map_err(fetch_error)?;
        let message = format!(
            "`src-url` has no `src-checksum`: the archive is not verified; pin it with \
             src-checksum = \"{}\"",
            fetched.identity().trim_start_matches("sha256:")
        );
        reporter.event(Event::Warning { message: &message });
        let src_dir = fetch::project_dir(fetched.root(), project).map_err(fetch_error)?;
        return source_step(build, chain, src_dir, reporter);
    };
    let options = &build.options;
    let key = key_of(
        &chain.key,
        &[
            APP_FORMAT,
            "source",
            &identity,
            project.unwrap_or_default(),
            &options.compression.cache_name(),
            &options.source_date_epoch.to_string(),
        ],
    );
    let inputs: Inputs = [("source".to_owned(), identity.clone())].into();
    let parent = chain.key.clone();
    let explain = Explain {
        history: &build.history,
        parent: &parent,
        inputs: &inputs,
    };
    let made = build.cache.step_explained(
        store,
        &key,
        Step::Source.name(),
        Some(explain),
        reporter,
        |_| {
            let fetched = fetch::fetch_pinned(origin, Some(&identity), &work_dir, store)
                .map_err(fetch_error)?;
            let src_dir = fetch::project_dir(fetched.root(), project).map_err(fetch_error)?;
            let ctx = context(build, src_dir)?;
            Step::Source.run(&ctx, None)
        },
        Build::cache_error,
    )?;
    chain.layers.push(made);
    chain.key = key;
    Ok(())
}

/// The SBOM of `layers`: the dpkg database, the Python distributions of `/nua/venv` and
/// the npm packages of `/nua/app/node_modules`.
fn sbom_of(
    build: &Build<'_>,
    chain: &mut Chain,
    layers: &[oci::Layer],
    reporter: &mut dyn Reporter,
) -> Result<Vec<u8>, Error> {
    let sandbox_error = |source| Error::Sandbox {
        step: Step::Metadata.name().to_owned(),
        source: Box::new(source),
    };
    let sandbox = chain
        .sandbox(&build.sandbox_options, build.store, reporter)
        .map_err(sandbox_error)?;
    let mut root = sandbox.root(layers).map_err(sandbox_error)?;
    let status = root
        .read_file("/var/lib/dpkg/status")
        .map_err(sandbox_error)?
        .unwrap_or_default();
    let npm_lock = root
        .read_file("/nua/app/node_modules/.package-lock.json")
        .map_err(sandbox_error)?;
    // Each distribution's folder name, then the headers of its METADATA (name as
    // published, version, license).
    let list = Job {
        command: "for d in /nua/venv/lib/python3*/site-packages/*.dist-info; do \
                  [ -d \"$d\" ] || continue; echo \"@@dist-info ${d##*/}\"; \
                  [ -f \"$d/METADATA\" ] && sed -n '/^$/q;p' \"$d/METADATA\"; done; true",
        as_root: false,
        shown: false,
    };
    let world = World::new(&[], 0, None, None);
    let mut lines = Vec::new();
    run::run_commands(
        &mut root,
        &world,
        Step::Metadata.name(),
        &[list],
        &[],
        Network::None,
        &mut CollectLines(&mut lines),
    )?;
    let mut dist_infos: Vec<sbom::DistInfo> = Vec::new();
    for line in lines {
        match (line.strip_prefix("@@dist-info "), dist_infos.last_mut()) {
            (Some(dir_name), _) => dist_infos.push(sbom::DistInfo {
                dir_name: dir_name.to_owned(),
                metadata: None,
            }),
            (None, Some(last)) => {
                let metadata = last.metadata.get_or_insert_with(Vec::new);
                metadata.extend_from_slice(line.as_bytes());
                metadata.push(b'\n');
            }
            (None, None) => {}
        }
    }

    let sbom_error = |source| Error::Sbom {
        source: Box::new(source),
    };
    let mut components = sbom::debian_components(&status, &build.distro).map_err(sbom_error)?;
    components.extend(sbom::python_components(&dist_infos));
    if let Some(lock) = npm_lock {
        components
            .extend(sbom::npm_components(&lock, &sbom::NpmInstall::default()).map_err(sbom_error)?);
    }
    let config = &build.app.config;
    let tag = config.image_tag();
    let app = sbom::AppInfo {
        id: config.id(),
        version: config.version(),
        image_tag: &tag,
        license: config.build.license.as_deref(),
    };
    Ok(sbom::spdx_json(
        &app,
        build.options.source_date_epoch,
        &components,
    ))
}

/// Run the `test` commands in the finished image; a pass is remembered under the image's
/// key, so an unchanged image is not tested again.
fn test_step(
    build: &Build<'_>,
    plan: &AppPlan,
    chain: &mut Chain,
    layers: &[(String, oci::Layer, bool)],
    image_key: &str,
    reporter: &mut dyn Reporter,
) -> Result<(), Error> {
    if plan.tests.is_empty() {
        return Ok(());
    }
    let key = key_of(image_key, &["test", &plan.tests.join("\n")]);
    let marker = build.options.cache_dir.join("tests").join(&key);
    reporter.event(Event::StepStarted { step: "test" });
    let started = std::time::Instant::now();
    let cached = !build.options.no_cache && marker.is_file();
    if !cached {
        let sandbox_error = |source| Error::Sandbox {
            step: "test".to_owned(),
            source: Box::new(source),
        };
        let all: Vec<oci::Layer> = layers.iter().map(|(_, l, _)| l.clone()).collect();
        let sandbox = chain
            .sandbox(&build.sandbox_options, build.store, reporter)
            .map_err(sandbox_error)?;
        let mut root = sandbox.root(&all).map_err(sandbox_error)?;
        let mut env = build.world.env.clone();
        env.extend(super::metadata::plain_env(&build.app.config));
        let world = World {
            env,
            mounts: Vec::new(),
        };
        for test in &plan.tests {
            let job = Job {
                command: test,
                as_root: false,
                shown: true,
            };
            run::run_commands(
                &mut root,
                &world,
                "test",
                &[job],
                &[],
                Network::None,
                reporter,
            )
            .map_err(|err| match err {
                Error::StepFailed {
                    command,
                    status,
                    tail,
                    ..
                } => Error::TestFailed {
                    command,
                    status,
                    tail,
                },
                other => other,
            })?;
        }
        let write = || -> std::io::Result<()> {
            fs_err::create_dir_all(marker.parent().expect("has a parent"))?;
            fs_err::write(&marker, b"passed\n")
        };
        write().map_err(|source| Error::Cache {
            path: marker.clone(),
            source,
        })?;
    }
    reporter.event(Event::StepFinished {
        step: "test",
        cached,
        elapsed: started.elapsed(),
    });
    Ok(())
}

/// A reporter that keeps the output lines of a command (and nothing else).
struct CollectLines<'a>(&'a mut Vec<String>);

impl Reporter for CollectLines<'_> {
    fn event(&mut self, event: Event<'_>) {
        if let Event::Output { line } = event {
            self.0.push(line.to_owned());
        }
    }
}
