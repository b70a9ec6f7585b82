//! Real apps built by `nua-pack build` from the real Debian archive, PyPI and npm, then run on
//! the real Docker Engine: flask-hello (pip, requirements.txt) and node-hello (npm ci), their
//! SBOM and metadata, a cached rebuild after a source edit, and reproducibility.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::app_build::{build_command, build_events, steps_made, EPOCH};
use common::docker::{self, exec, inspect, load, run_published, wait_for_http, wait_healthy};
use common::*;
use serde_json::Value;

/// `nua-pack build APP --output OUT --json` with `cache`: the JSON events and the result
/// (the last line).
fn build(app: &Path, cache: &Path, out: &Path, extra: &[&str]) -> (Vec<Value>, Value) {
    let mut lines = build_events(&mut build_command(app, cache, out, extra));
    let result = lines.pop().expect("a result line");
    assert_eq!(result["event"], "result", "{result}");
    (lines, result)
}

/// The packages of an SPDX document by package URL type: `(name, version)` pairs.
fn sbom_packages(sbom: &Value, purl_type: &str) -> Vec<(String, String)> {
    let prefix = format!("pkg:{purl_type}/");
    sbom["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["externalRefs"].as_array().is_some_and(|refs| {
                refs.iter()
                    .any(|r| r["referenceLocator"].as_str().unwrap().starts_with(&prefix))
            })
        })
        .map(|p| {
            let name = p["name"].as_str().unwrap().to_owned();
            (name, p["versionInfo"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// Build fixture `name` on `base` in a fresh cache, load it, run it, and check what every
/// app image must have; returns the running container and the image's SBOM.
fn build_and_run(name: &str, base: &str, port: u16) -> (tempfile::TempDir, docker::Running) {
    let work = temp_dir();
    let cache = cache_with_base(base, work.path());
    let tarball = work.path().join(format!("{name}.tar"));
    let (events, result) = build(&fixture_app(name), &cache, &tarball, &[]);
    assert!(steps_made(&events).contains(&"dependencies"));
    let tag = format!("nua-{name}:1.0-1");
    let image = load(&tarball, &tag);
    let id = inspect(&tag, "{{.Id}}");
    assert_eq!(id.trim(), result["config_digest"].as_str().unwrap());
    let labels: Value = serde_json::from_str(&inspect(&tag, "{{json .Config.Labels}}")).unwrap();
    assert_eq!(labels["APP_ID"], name);
    assert_eq!(labels["NUA_TAG"], tag);
    assert_eq!(labels["org.opencontainers.image.licenses"], "MIT");
    assert!(labels["NUA_BUILD_VERSION"].is_string());

    let container_name = format!("nua-test-{name}-{}", std::process::id());
    let (container, host_port) = run_published(&tag, &container_name, port);
    let (status, body) = wait_for_http(host_port, "/");
    assert!(status.contains("200"), "GET / answered {status}: {body}");
    wait_healthy(&container);

    // What the build used and nothing else: no package caches, no CA bundle, no apt lists.
    let leftovers = exec(
        &container,
        "ls -d /nua/.cache /nua/.npm /root/.cache /run/nua /var/cache/nua /tmp/* \
         /var/lib/apt/lists/*_Packages* 2>/dev/null; true",
    );
    assert_eq!(leftovers.trim(), "", "left in the image");
    let env = inspect(&tag, "{{json .Config.Env}}");
    assert!(
        !env.contains("PIP_CERT") && !env.contains("ca-certificates.crt"),
        "{env}"
    );
    assert_eq!(exec(&container, "id -u").trim(), "1000");

    let meta: Value =
        serde_json::from_str(&exec(&container, "cat /nua/metadata/nua-config.json")).unwrap();
    assert_eq!(meta["metadata"]["id"], name);
    let sbom: Value =
        serde_json::from_str(&exec(&container, "cat /nua/metadata/sbom.json")).unwrap();
    assert_eq!(sbom["spdxVersion"], "SPDX-2.3");
    // The SPDX project's own validator accepts it.
    let file = work.path().join("sbom.spdx.json");
    std::fs::write(&file, sbom.to_string()).unwrap();
    run_ok(Command::new(docker::spdx_validator()).arg("-i").arg(&file));
    // Every Debian package dpkg says is installed is listed, with its version.
    let dpkg = exec(&container, "dpkg-query -W -f '${Package} ${Version}\\n'");
    let debs = sbom_packages(&sbom, "deb");
    for line in dpkg.lines() {
        let (pkg, version) = line.split_once(' ').unwrap();
        assert!(
            debs.iter().any(|(n, v)| n == pkg && v == version),
            "{pkg} {version} is not in the SBOM"
        );
    }
    (
        work,
        docker::Running {
            container,
            image,
            port: host_port,
            sbom,
        },
    )
}

#[test]
fn flask_hello_runs_healthy_with_its_python_packages_in_the_sbom() {
    let (_work, running) = build_and_run("flask-hello", "python", 8000);
    let (_, body) = wait_for_http(running.port, "/health");
    assert_eq!(body, "ok\n");
    let python = sbom_packages(&running.sbom, "pypi");
    for (name, version) in [
        ("flask", "3.0.3"),
        ("gunicorn", "23.0.0"),
        ("werkzeug", "3.0.4"),
    ] {
        assert!(
            python
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case(name) && v == version),
            "{name} {version} missing from {python:?}"
        );
    }
    // Byte code is compiled with hashes, not the build's time, so the layer reproduces.
    let flags = exec(
        &running.container,
        "python3 -c \"import glob,sys; f=glob.glob('/nua/venv/lib/python3*/site-packages/flask/__pycache__/app.*.pyc')[0]; \
         print(int.from_bytes(open(f,'rb').read()[4:8], 'little'))\"",
    );
    assert_ne!(flags.trim(), "0", "flask's .pyc is timestamp-based");
}

#[test]
fn node_hello_runs_healthy_with_its_npm_packages_in_the_sbom() {
    let (_work, running) = build_and_run("node-hello", "node-18", 3000);
    let (_, body) = wait_for_http(running.port, "/");
    assert!(body.starts_with("Hello from Node, up"), "{body}");
    assert_eq!(
        sbom_packages(&running.sbom, "npm"),
        vec![("ms".to_owned(), "2.1.3".to_owned())]
    );
}

/// A copy of fixture `name` in a new folder of `work`.
fn copy_fixture(name: &str, work: &Path, folder: &str) -> PathBuf {
    let app = work.join(folder);
    copy_tree(&fixture_app(name), &app);
    app
}

#[test]
fn a_source_edit_rebuilds_only_the_source_and_what_follows() {
    let work = temp_dir();
    let cache = cache_with_base("python", work.path());
    let app = copy_fixture("flask-hello", work.path(), "app");
    let out = work.path().join("flask.tar");
    let (first, result) = build(&app, &cache, &out, &[]);
    assert_eq!(
        steps_made(&first),
        vec!["dependencies", "source", "metadata"],
        "the base comes from the cache"
    );

    let (again, same) = build(&app, &cache, &out, &[]);
    assert_eq!(
        steps_made(&again),
        Vec::<String>::new(),
        "a no-op rebuild made steps"
    );
    assert_eq!(same["manifest_digest"], result["manifest_digest"]);

    let source = app.join("app.py");
    let text = std::fs::read_to_string(&source).unwrap();
    std::fs::write(
        &source,
        text.replace("return \"ok\\n\"", "return \"fine\\n\""),
    )
    .unwrap();
    let (edited, changed) = build(&app, &cache, &out, &["--why"]);
    assert_eq!(steps_made(&edited), vec!["source", "metadata"]);
    assert_ne!(changed["manifest_digest"], result["manifest_digest"]);
    let why = edited
        .iter()
        .find(|e| e["event"] == "step_running" && e["step"] == "source")
        .unwrap();
    assert_eq!(why["reasons"], serde_json::json!(["`app.py` changed"]));
    // The source is the top layer, the metadata just below it, and the edit changed the
    // source alone: every other layer is the same blob as before, so Docker registers one.
    let layers = |r: &Value| -> Vec<(String, String)> {
        r["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let step = l["step"].as_str().unwrap().to_owned();
                (step, l["digest"].as_str().unwrap().to_owned())
            })
            .collect()
    };
    let (before, after) = (layers(&result), layers(&changed));
    let steps: Vec<&str> = after
        .iter()
        .rev()
        .take(3)
        .map(|(s, _)| s.as_str())
        .collect();
    assert_eq!(steps, ["source", "metadata", "dependencies"], "{after:?}");
    let top = before.len() - 1;
    assert_eq!(before[..top], after[..top]);
    assert_ne!(before[top], after[top]);
}

#[test]
fn flask_hello_reproduces_in_another_folder_and_cache() {
    let work = temp_dir();
    let first = cache_with_base("python", &work.path().join("one"));
    let second = cache_with_base("python", &work.path().join("two"));
    let (_, a) = build(
        &fixture_app("flask-hello"),
        &first,
        &work.path().join("a.tar"),
        &[],
    );
    let app = copy_fixture("flask-hello", work.path(), "elsewhere");
    let (_, b) = build(&app, &second, &work.path().join("b.tar"), &[]);
    assert_eq!(a["manifest_digest"], b["manifest_digest"]);
}

/// The whole conformance corpus plans without error; nothing is built.
#[test]
fn the_conformance_corpus_plans_with_dry_run() {
    let corpus = root().join("../shared/nua-compat/apps");
    let mut configs = Vec::new();
    let mut pending = vec![corpus.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("nua-config.")
            {
                configs.push(path);
            }
        }
    }
    assert!(
        configs.len() > 20,
        "corpus not found at {}",
        corpus.display()
    );
    let cache = temp_dir();
    for config in configs {
        let out = run(nua_pack()
            .args(["build", "--dry-run", "--json"])
            .arg(&config)
            .env("NUA_CACHE_DIR", cache.path()));
        let stderr = String::from_utf8_lossy(&out.stderr);
        if config.to_string_lossy().contains("flask_pg_local") {
            assert!(!out.status.success(), "flask_pg_local must be refused");
            continue;
        }
        assert!(out.status.success(), "{}:\n{stderr}", config.display());
        let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
        let steps = plan["steps"].as_array().unwrap();
        assert!(
            steps.iter().any(|s| s["step"] == "metadata"),
            "{}: {plan}",
            config.display()
        );
    }
    // Nothing was built, downloaded or cached.
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0);
}

/// Without root: the unprivileged user of the test setup builds flask-hello in its own
/// cache and gets the image root gets.
#[test]
fn flask_hello_builds_rootless_to_the_same_image() {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return;
    }
    let user = "nua-rootless";
    let home = tempfile::Builder::new()
        .prefix("nua-rootless-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let as_root = cache_with_base("python", &home.path().join("root"));
    let (_, expected) = build(
        &fixture_app("flask-hello"),
        &as_root,
        &home.path().join("root.tar"),
        &[],
    );
    // Its own copy (not hard links: it must own its cache) of the shared base layers.
    let cache = home.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    for sub in ["blobs", "layers"] {
        run_ok(
            Command::new("cp")
                .arg("-r")
                .arg(as_root.join(sub))
                .arg(&cache),
        );
    }
    let app = copy_fixture("flask-hello", home.path(), "app");
    let exe = home.path().join("nua-pack");
    std::fs::copy(env!("CARGO_BIN_EXE_nua-pack"), &exe).unwrap();
    std::fs::remove_dir_all(home.path().join("root")).unwrap();
    run_ok(Command::new("chown").args(["-R", user]).arg(home.path()));
    let stdout = run_ok(
        Command::new("setpriv")
            .args(["--reuid", user, "--regid", user, "--init-groups", "--"])
            .arg(&exe)
            .arg("build")
            .arg(&app)
            .arg("--json")
            .arg("-o")
            .arg(home.path().join("rootless.tar"))
            .env("HOME", home.path())
            .env("NUA_CACHE_DIR", &cache)
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .env_remove("TMPDIR")
            .current_dir(home.path()),
    );
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(result["manifest_digest"], expected["manifest_digest"]);
    // Unpacked layers belong to the user's subordinate ids: root removes them.
    run_ok(Command::new("rm").arg("-rf").arg(&cache));
}

/// The files, links and other non-folders of each layer of an image tarball: path → content
/// (the content of files of at most 1 MiB only).
fn layer_files(tarball: &Path) -> Vec<std::collections::BTreeMap<String, Vec<u8>>> {
    use std::io::Read;
    let mut blobs = std::collections::HashMap::new();
    let mut outer = tar::Archive::new(std::fs::File::open(tarball).unwrap());
    for entry in outer.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        blobs.insert(path, bytes);
    }
    let manifest: Value = serde_json::from_slice(&blobs["manifest.json"]).unwrap();
    manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| {
            let gz = flate2::read::GzDecoder::new(&blobs[layer.as_str().unwrap()][..]);
            let mut files = std::collections::BTreeMap::new();
            for entry in tar::Archive::new(gz).entries().unwrap() {
                let mut entry = entry.unwrap();
                if entry.header().entry_type().is_dir() {
                    continue;
                }
                let path = entry.path().unwrap().to_string_lossy().into_owned();
                let mut bytes = Vec::new();
                if entry.size() <= 1 << 20 {
                    entry.read_to_end(&mut bytes).unwrap();
                }
                files.insert(path, bytes);
            }
            files
        })
        .collect()
}

/// flask-hello's `requirements.txt` is installed by uv (fetched by the build, bound outside
/// the root): the same files as pip installs, byte for byte, `.pyc` compiled from the same
/// sources the same way, and nothing of uv in the image (its lock, its cache).
#[test]
fn uv_installs_what_pip_installs() {
    let work = temp_dir();
    let built = |name: &str, installer: &str| {
        let cache = cache_with_base("python", &work.path().join(name));
        let out = work.path().join(format!("{name}.tar"));
        let mut cmd = build_command(&fixture_app("flask-hello"), &cache, &out, &[]);
        let mut events = build_events(cmd.env("NUA_PIP_INSTALLER", installer));
        assert_eq!(events.pop().unwrap()["event"], "result");
        let shown: Vec<String> = events
            .iter()
            .filter(|e| e["event"] == "output")
            .map(|e| e["line"].as_str().unwrap().to_owned())
            .filter(|line| line.starts_with("$ "))
            .collect();
        let deps = layer_files(&out)
            .into_iter()
            .find(|files| {
                files
                    .keys()
                    .any(|p| p.ends_with("site-packages/flask/app.py"))
            })
            .expect("a layer holds flask");
        (shown, deps, cache)
    };
    let (uv_shown, by_uv, uv_cache) = built("uv", "uv");
    let (pip_shown, by_pip, _) = built("pip", "pip");
    assert!(
        uv_shown.iter().any(|l| l.contains("/run/nua/uv-")),
        "{uv_shown:?}"
    );
    assert!(
        pip_shown.iter().any(|l| l.starts_with("$ pip install -r ")),
        "{pip_shown:?}"
    );
    assert!(
        uv_cache.join("tools").read_dir().unwrap().next().is_some(),
        "uv is kept in the cache's tools folder"
    );
    // Who installed it, and the list of what it installed, say the installer: the rest is
    // the same.
    let own = |path: &str| {
        !path.ends_with(".dist-info/INSTALLER") && !path.ends_with(".dist-info/RECORD")
    };
    let paths = |files: &std::collections::BTreeMap<String, Vec<u8>>| -> Vec<String> {
        files.keys().filter(|p| own(p)).cloned().collect()
    };
    let (uv_paths, pip_paths) = (paths(&by_uv), paths(&by_pip));
    let only_uv: Vec<_> = uv_paths.iter().filter(|p| !pip_paths.contains(p)).collect();
    let only_pip: Vec<_> = pip_paths.iter().filter(|p| !uv_paths.contains(p)).collect();
    assert!(
        only_uv.is_empty() && only_pip.is_empty(),
        "only uv: {only_uv:?}\nonly pip: {only_pip:?}"
    );
    for path in &uv_paths {
        let (a, b) = (&by_uv[path], &by_pip[path]);
        if path.contains("/venv/bin/") {
            // Scripts: the shebang names the venv's `python` or `python3`.
            assert!(a.starts_with(b"#!/nua/venv/bin/python"), "{path}");
            assert!(b.starts_with(b"#!/nua/venv/bin/python"), "{path}");
        } else if path.ends_with(".pyc") {
            // Magic number, flags (3: checked hash, as `SOURCE_DATE_EPOCH` asks) and the
            // source's hash; the marshalled code may share objects differently.
            assert_eq!(a[..16], b[..16], "{path}");
            assert_eq!(a[4..8], [3, 0, 0, 0], "{path} is not checked-hash");
        } else {
            assert!(a == b, "{path} differs");
        }
    }
    let pyc = by_uv.keys().filter(|p| p.ends_with(".pyc")).count();
    assert!(pyc > 100, "uv compiled {pyc} files");
    assert!(
        !by_uv
            .keys()
            .any(|p| p.ends_with("venv/.lock") || p.contains("cache/nua")),
        "{:?}",
        by_uv
            .keys()
            .filter(|p| !p.contains("site-packages"))
            .collect::<Vec<_>>()
    );
}
