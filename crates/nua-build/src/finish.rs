//! The last steps of a build: what the image holds (its SBOM) and its tests.

use super::app::Build;
use super::layers::{key_of, only_layers, write_file, Chain, LayerSummary};
use super::plan::AppPlan;
use super::run::{self, Job, World};
use super::steps::Step;
use super::{sbom, Error, Event, Reporter};
use nua_oci as oci;
use nua_sandbox::Network;

/// The SBOM of `layers`: the dpkg database, the Python distributions of `/nua/venv` and
/// the npm packages of `/nua/app/node_modules`.
pub fn sbom_of(
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
        .sandbox(&build.above.options, build.store, reporter)
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
    // Only a root with a virtual environment is asked (an image without a shell is fine).
    let has_venv = root
        .read_file("/nua/venv/pyvenv.cfg")
        .map_err(sandbox_error)?
        .is_some();
    if has_venv {
        run::run_commands(
            &mut root,
            &world,
            Step::Metadata.name(),
            &[list],
            &[],
            Network::None,
            &mut CollectLines(&mut lines),
        )?;
    }
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
pub fn test_step(
    build: &Build<'_>,
    plan: &AppPlan,
    chain: &mut Chain,
    layers: &[LayerSummary],
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
        reporter.event(Event::Rebuilt {
            step: "test",
            reasons: &[],
        });
        let sandbox_error = |source| Error::Sandbox {
            step: "test".to_owned(),
            source: Box::new(source),
        };
        let all = only_layers(layers);
        let sandbox = chain
            .sandbox(&build.above.options, build.store, reporter)
            .map_err(sandbox_error)?;
        let mut root = sandbox.root(&all).map_err(sandbox_error)?;
        // What the container will see: the image's variables and the literal `[env]`.
        let mut env: Vec<(String, String)> = build
            .image_env
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        env.push(("HOME".into(), "/nua".into()));
        env.push(("USER".into(), "nua".into()));
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
        write_file(&marker, b"").map_err(|source| Error::Cache {
            path: build.options.cache_dir.join("tests"),
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
