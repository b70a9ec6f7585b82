//! The last steps of a build: what the image holds (its SBOM) and its tests.

use super::app::Build;
use super::layers::{key_of, only_layers, write_file, Chain, LayerSummary};
use super::plan::AppPlan;
use super::run::{self, Job, World};
use super::steps::Step;
use super::{sbom, Error, Event, Reporter};
use nua_oci as oci;
use nua_sandbox::Network;

/// Where in an image the SBOM's inputs are: the dpkg database, the Python distributions of
/// `/nua/venv`, the npm packages of `/nua/app/node_modules`.
const SBOM_PATHS: &[&str] = &["var/lib/dpkg/status", "nua/venv", "nua/app/node_modules"];
/// Layers up to this size (compressed) are read to know whether they touch [`SBOM_PATHS`];
/// larger ones are taken to, unless an earlier build read them.
const SCAN_UP_TO: u64 = 16 << 20;

/// What the SBOM is made from, read from the image's root.
#[derive(serde::Serialize, serde::Deserialize)]
struct SbomInputs {
    status: Vec<u8>,
    npm_lock: Option<Vec<u8>>,
    /// `@@dist-info NAME` lines, each followed by its METADATA headers.
    dist_lines: Vec<String>,
}

/// The SBOM of `layers`: the dpkg database, the Python distributions of `/nua/venv` and
/// the npm packages of `/nua/app/node_modules`. Their content is read from a root of the
/// layers once per set of layers that can change it: a new source (which lands in
/// `/nua/app`) reuses what the previous build read.
pub fn sbom_of(
    build: &Build<'_>,
    chain: &mut Chain,
    layers: &[oci::Layer],
    reporter: &mut dyn Reporter,
) -> Result<Vec<u8>, Error> {
    let memo = sbom_memo_key(build, layers)
        .map(|key| build.options.cache_dir.join("sbom-inputs").join(key));
    let remembered = match (&memo, build.options.no_cache) {
        (Some(dir), false) => read_inputs(dir),
        _ => None,
    };
    let inputs = match remembered {
        Some(inputs) => inputs,
        None => {
            let inputs = read_sbom_inputs(build, chain, layers, reporter)?;
            if let Some(dir) = &memo {
                // Only a faster next build is lost when this cannot be written.
                let _ = write_inputs(dir, &inputs);
            }
            inputs
        }
    };
    let SbomInputs {
        status,
        npm_lock,
        dist_lines: lines,
    } = inputs;
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

/// Read the SBOM's inputs from a root of `layers`.
fn read_sbom_inputs(
    build: &Build<'_>,
    chain: &mut Chain,
    layers: &[oci::Layer],
    reporter: &mut dyn Reporter,
) -> Result<SbomInputs, Error> {
    let sandbox_error = |source| Error::Sandbox {
        step: Step::Metadata.name().to_owned(),
        source: Box::new(source),
    };
    let sandbox = chain
        .sandbox(&build.above.options, build.store, reporter)
        .map_err(sandbox_error)?;
    let root = sandbox.root(layers).map_err(sandbox_error)?;
    let read = root.inspect("reading the SBOM's inputs", |merged| {
        let status = merged.read("var/lib/dpkg/status")?.unwrap_or_default();
        let npm_lock = merged.read("nua/app/node_modules/.package-lock.json")?;
        let mut dist_lines = Vec::new();
        // Only a root with a virtual environment is asked.
        if merged.read("nua/venv/pyvenv.cfg")?.is_some() {
            dist_lines = dist_info_lines(merged)?;
        }
        Ok(SbomInputs {
            status,
            npm_lock,
            dist_lines,
        })
    });
    read.map_err(sandbox_error)
}

/// Each distribution of `/nua/venv/lib/python3*/site-packages`: `@@dist-info NAME`, then the
/// headers of its METADATA (up to the first empty line: name as published, version,
/// license), folders and lines in bytewise order as the shell's glob gives them.
fn dist_info_lines(merged: &nua_sandbox::Merged) -> nua_sandbox::Result<Vec<String>> {
    let mut lines = Vec::new();
    let lib = "nua/venv/lib";
    for python in merged.list(lib)?.unwrap_or_default() {
        if !python.starts_with("python3") {
            continue;
        }
        let packages = format!("{lib}/{python}/site-packages");
        for name in merged.list(&packages)?.unwrap_or_default() {
            if name.starts_with('.') || !name.ends_with(".dist-info") {
                continue;
            }
            let dir = format!("{packages}/{name}");
            if merged.list(&dir)?.is_none() {
                continue;
            }
            lines.push(format!("@@dist-info {name}"));
            let metadata = merged.read(&format!("{dir}/METADATA"))?.unwrap_or_default();
            let headers = metadata.split(|b| *b == b'\n');
            for line in headers.take_while(|line| !line.is_empty()) {
                lines.push(String::from_utf8_lossy(line).into_owned());
            }
        }
    }
    Ok(lines)
}

/// The key of the SBOM's inputs for `layers`: the DiffIDs of the layers that may change
/// them, bottom first. `None` when a layer cannot be read.
fn sbom_memo_key(build: &Build<'_>, layers: &[oci::Layer]) -> Option<String> {
    let touches_dir = build.options.cache_dir.join("sbom-inputs").join("touches");
    let mut parts = vec!["sbom-inputs v1".to_owned(), build.distro.clone()];
    for layer in layers {
        let hex = layer.diff_id.hex();
        let known = touches_dir.join(hex);
        let touches = match std::fs::read(&known).ok().as_deref() {
            Some(b"1") => true,
            Some(b"0") => false,
            _ => {
                // The layer's folder in the sandbox's cache when it is there (a step just
                // ran on it), else its archive.
                let unpacked = nua_sandbox::unpacked_touches(
                    &build.options.cache_dir.join("sandbox"),
                    &layer.diff_id,
                    SBOM_PATHS,
                );
                let touches = match unpacked {
                    Some(touches) => touches,
                    None if layer.descriptor.size > SCAN_UP_TO => true,
                    None => layer_touches_sbom(build.store, layer)?,
                };
                if unpacked.is_some() || layer.descriptor.size <= SCAN_UP_TO {
                    let _ = write_file(&known, if touches { b"1" } else { b"0" });
                }
                touches
            }
        };
        if touches {
            parts.push(layer.diff_id.to_string());
        }
    }
    Some(
        oci::Digest::of(parts.join("\n").as_bytes())
            .hex()
            .to_owned(),
    )
}

/// Whether a layer adds, changes or hides anything the SBOM is made from.
fn layer_touches_sbom(store: &oci::BlobStore, layer: &oci::Layer) -> Option<bool> {
    let blob = store.open_blob(&layer.descriptor.digest).ok()?;
    let reader = oci::layer::stream::decompressed(blob).ok()?;
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().ok()? {
        let entry = entry.ok()?;
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let is_dir = entry.header().entry_type().is_dir();
        if touches_sbom_path(&path, is_dir) {
            return Some(true);
        }
    }
    Some(false)
}

/// Whether a layer entry at `path` may change what is read at [`SBOM_PATHS`]: it is at or
/// under one of them, hides one of them or a folder above it (whiteouts), or replaces such
/// a folder with something else.
fn touches_sbom_path(path: &str, is_dir: bool) -> bool {
    let path = path.trim_start_matches("./").trim_matches('/');
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let join = |dir: &str, name: &str| match dir {
        "" => name.to_owned(),
        dir => format!("{dir}/{name}"),
    };
    let related = |p: &str| {
        SBOM_PATHS
            .iter()
            .any(|s| p == *s || p.starts_with(&format!("{s}/")) || s.starts_with(&format!("{p}/")))
    };
    if name == ".wh..wh..opq" {
        return dir.is_empty() || related(dir);
    }
    if let Some(hidden) = name.strip_prefix(".wh.") {
        return related(&join(dir, hidden));
    }
    let under = SBOM_PATHS
        .iter()
        .any(|s| path == *s || path.starts_with(&format!("{s}/")));
    let above = SBOM_PATHS
        .iter()
        .any(|s| s.starts_with(&format!("{path}/")));
    under || (above && !is_dir)
}

fn read_inputs(dir: &std::path::Path) -> Option<SbomInputs> {
    let status = std::fs::read(dir.join("status")).ok()?;
    let lines = std::fs::read_to_string(dir.join("dist-info")).ok()?;
    let npm_lock = std::fs::read(dir.join("npm-lock")).ok();
    Some(SbomInputs {
        status,
        npm_lock,
        dist_lines: lines.split_terminator('\n').map(str::to_owned).collect(),
    })
}

/// Write the inputs' files, the status last: a folder without it is not read back.
fn write_inputs(dir: &std::path::Path, inputs: &SbomInputs) -> std::io::Result<()> {
    if let Some(lock) = &inputs.npm_lock {
        write_file(&dir.join("npm-lock"), lock)?;
    }
    let lines: String = inputs.dist_lines.iter().map(|l| format!("{l}\n")).collect();
    write_file(&dir.join("dist-info"), lines.as_bytes())?;
    write_file(&dir.join("status"), &inputs.status)
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
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_touches_the_sbom_inputs() {
        // At or under them.
        assert!(touches_sbom_path("var/lib/dpkg/status", false));
        assert!(touches_sbom_path(
            "./nua/venv/lib/python3.11/site-packages/x.dist-info/METADATA",
            false
        ));
        assert!(touches_sbom_path("nua/app/node_modules/", true));
        // Folders above them, as folders: no; replaced by a file or a link: yes.
        assert!(!touches_sbom_path("nua/", true));
        assert!(!touches_sbom_path("nua/app", true));
        assert!(touches_sbom_path("nua/app", false));
        // Whiteouts hiding them or a folder above; an opaque folder above or below.
        assert!(touches_sbom_path("nua/.wh.venv", false));
        assert!(touches_sbom_path("var/lib/.wh.dpkg", false));
        assert!(touches_sbom_path("nua/app/.wh..wh..opq", false));
        assert!(touches_sbom_path("nua/venv/lib/.wh..wh..opq", false));
        // The app's own files, another file of dpkg's, whiteouts elsewhere.
        assert!(!touches_sbom_path("nua/app/app.py", false));
        assert!(!touches_sbom_path("nua/app/node_modules_old/x", false));
        assert!(!touches_sbom_path("var/lib/dpkg/status-old", false));
        assert!(!touches_sbom_path("nua/app/.wh.app.py", false));
        assert!(!touches_sbom_path("nua/metadata/sbom.spdx.json", false));
    }

    #[test]
    fn remembered_inputs_read_back_as_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = SbomInputs {
            status: b"Package: a\n\n".to_vec(),
            npm_lock: None,
            dist_lines: vec![
                "@@dist-info a-1.dist-info".into(),
                "Name: a".into(),
                String::new(),
            ],
        };
        write_inputs(dir.path(), &inputs).unwrap();
        let read = read_inputs(dir.path()).unwrap();
        assert_eq!(read.status, inputs.status);
        assert_eq!(read.npm_lock, None);
        assert_eq!(read.dist_lines, inputs.dist_lines);
        // Without its status file, a folder is not a memo.
        std::fs::remove_file(dir.path().join("status")).unwrap();
        assert!(read_inputs(dir.path()).is_none());
    }
}
