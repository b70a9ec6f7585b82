//! End-to-end builds: `nua-pack build` of the static-site fixture, loaded and run on the real
//! Docker Engine, read by skopeo and umoci, and rebuilt for determinism.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::app_build::build_command;
use common::docker::wait_for_http;
use common::*;
use serde_json::Value;

/// The base the static-site fixture builds on (`builder = "python"`).
const BASE: &str = "python";

/// A fresh cache under `dir` holding the fixture's base (built once per machine).
fn cache_in(dir: &Path) -> std::path::PathBuf {
    cache_with_base(BASE, dir)
}

/// Build `app` into `out` with `nua-pack build --json`, the blob store under `cache`,
/// `SOURCE_DATE_EPOCH=0`.
fn build(app: &Path, cache: &Path, out: &Path, extra: &[&str]) -> Value {
    build_at_epoch(app, cache, out, extra, 0)
}

fn build_at_epoch(app: &Path, cache: &Path, out: &Path, extra: &[&str], epoch: u64) -> Value {
    let stdout =
        run_ok(build_command(app, cache, out, extra).env("SOURCE_DATE_EPOCH", epoch.to_string()));
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("build --json printed no JSON result ({e}):\n{stdout}"))
}

/// The layer of step `step` in a `--json` result.
fn layer<'a>(result: &'a Value, step: &str) -> &'a Value {
    result["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["step"] == step)
        .unwrap_or_else(|| panic!("no `{step}` layer in {result}"))
}

fn layer_digests(result: &Value) -> Vec<String> {
    result["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// The static-site fixture built on its bootstrapped base, in a fresh cache: the temporary
/// folder, the tarball and the `--json` result.
fn build_static_site() -> (tempfile::TempDir, std::path::PathBuf, Value) {
    let work = temp_dir();
    let tarball = work.path().join("static-site.tar");
    let result = build(
        &fixture_app("static-site"),
        &cache_in(work.path()),
        &tarball,
        &[],
    );
    (work, tarball, result)
}

#[test]
fn static_site_loads_and_serves_on_docker() {
    let (_work, tarball, result) = build_static_site();
    assert_eq!(result["image"], "nua-static-site:1.0-1");

    let loaded = run_ok(Command::new("docker").arg("load").arg("-i").arg(&tarball));
    assert!(
        loaded.contains("nua-static-site:1.0-1"),
        "docker load did not name the tag: {loaded}"
    );
    let _image = LoadedImage("nua-static-site:1.0-1".into());

    // What Docker reports must be what we wrote: same config digest (the image ID).
    let id = run_ok(Command::new("docker").args([
        "image",
        "inspect",
        "-f",
        "{{.Id}}",
        "nua-static-site:1.0-1",
    ]));
    assert_eq!(id.trim(), result["config_digest"].as_str().unwrap());

    let name = format!("nua-test-static-{}", std::process::id());
    run_ok(Command::new("docker").args([
        "run",
        "-d",
        "--name",
        &name,
        "-p",
        "127.0.0.1::8080",
        "nua-static-site:1.0-1",
    ]));
    let container = Container(name);
    let port_line = run_ok(Command::new("docker").args(["port", &container.0, "8080/tcp"]));
    let port: u16 = port_line
        .lines()
        .find_map(|l| l.strip_prefix("127.0.0.1:"))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no 127.0.0.1 port in {port_line:?}"));

    let (status, body) = wait_for_http(port, "/");
    assert!(status.contains("200"), "GET / answered {status}");
    assert!(
        body.contains("Hello from a Nua static site"),
        "body: {body}"
    );
    let (status, body) = wait_for_http(port, "/css/site.css");
    assert!(status.contains("200") && body.contains("font-family"));
    // `.nuaignore` keeps drafts out of the image.
    let (status, _) = wait_for_http(port, "/drafts/wip.html");
    assert!(
        status.contains("404"),
        "an ignored file was served: {status}"
    );

    // The start script runs as the `nua` user (uid 1000), not root.
    let user = run_ok(Command::new("docker").args(["exec", &container.0, "id", "-u"]));
    assert_eq!(user.trim(), "1000");
    let meta = run_ok(Command::new("docker").args([
        "exec",
        &container.0,
        "cat",
        "/nua/metadata/nua-config.json",
    ]));
    let meta: Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["metadata"]["id"], "static-site");

    // The image's healthcheck (from [healthcheck]) runs and passes.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health = run_ok(Command::new("docker").args([
            "inspect",
            "-f",
            "{{.State.Health.Status}}",
            &container.0,
        ]));
        match health.trim() {
            "healthy" => break,
            "unhealthy" => panic!("the container became unhealthy"),
            other if Instant::now() > deadline => panic!("still {other} after 60 s"),
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

#[test]
fn skopeo_and_umoci_accept_the_tarball() {
    let (work, tarball, result) = build_static_site();

    let inspect = run_ok(
        Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci-archive:{}", tarball.display())),
    );
    let inspect: Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Digest"], result["manifest_digest"]);
    assert_eq!(inspect["Labels"]["APP_ID"], "static-site");
    assert_eq!(inspect["Labels"]["NUA_TAG"], "nua-static-site:1.0-1");
    assert_eq!(
        inspect["Layers"].as_array().unwrap().len(),
        result["layers"].as_array().unwrap().len()
    );
    assert_eq!(layer(&result, "source")["cached"], false);

    // umoci reads OCI layouts: unpack the archive and let umoci apply every layer.
    let layout = unpack(&tarball, work.path());
    let bundle = work.path().join("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:1.0-1", layout.display()))
            .arg(&bundle),
    );
    let rootfs = bundle.join("rootfs");
    assert!(rootfs.join("nua/app/index.html").is_file());
    assert!(!rootfs.join("nua/app/drafts").exists());
    assert!(!rootfs.join("nua/app/nua-config.toml").exists());
    assert!(rootfs.join("nua/metadata/nua-config.json").is_file());
    assert!(rootfs.join("nua/scripts/start").is_file());
    assert!(rootfs.join("usr/bin/python3").exists());
    assert!(rootfs.join("nua/venv/bin/pip").is_file());
}

#[test]
fn same_inputs_same_digest_from_two_folders() {
    let work = temp_dir();
    let first = work.path().join("first/static-site");
    let second = work.path().join("second/elsewhere/static-site");
    copy_tree(&fixture_app("static-site"), &first);
    copy_tree(&fixture_app("static-site"), &second);
    // Different mtimes in the second copy, as if checked out minutes later.
    run_ok(Command::new("find").arg(&second).args([
        "-exec",
        "touch",
        "-d",
        "2031-01-02 03:04:05",
        "{}",
        "+",
    ]));

    let a = build(
        &first,
        &cache_in(&work.path().join("a")),
        &work.path().join("a.tar"),
        &[],
    );
    let cache_b = cache_in(&work.path().join("b"));
    let b = build(&second, &cache_b, &work.path().join("b.tar"), &[]);
    assert_eq!(a["manifest_digest"], b["manifest_digest"]);
    assert_eq!(
        std::fs::read(work.path().join("a.tar")).unwrap(),
        std::fs::read(work.path().join("b.tar")).unwrap(),
        "the two tarballs differ byte for byte"
    );
    // Held across runs and machines: a change here means the bytes of every image changed.
    // It pins what the base's lock decides: when Debian has dropped a locked version since
    // (a point release), the base comes from the live archive and only a == b holds.
    if built_from_lock(BASE, &cache_b) {
        insta::assert_snapshot!(
            "static_site_manifest_digest",
            a["manifest_digest"].as_str().unwrap()
        );
    }

    // One byte of one source file changes the app layer, the top one, and nothing else but
    // the metadata that records the layer (the config and manifest): the metadata layer
    // below it keeps its bytes.
    let css = second.join("css/site.css");
    let mut bytes = std::fs::read(&css).unwrap();
    bytes[0] ^= 0x20;
    std::fs::write(&css, bytes).unwrap();
    let c = build(&second, &cache_b, &work.path().join("c.tar"), &[]);
    let (before, after) = (layer_digests(&a), layer_digests(&c));
    assert_eq!(before.len(), after.len());
    let changed: Vec<usize> = (0..before.len())
        .filter(|&i| before[i] != after[i])
        .collect();
    let source = before.len() - 1;
    assert_eq!(
        changed,
        vec![source],
        "layers before {before:?}, after {after:?}"
    );
}

#[test]
fn source_date_epoch_moves_every_timestamp() {
    let work = temp_dir();
    let app = fixture_app("static-site");
    let cache = cache_in(work.path());
    let zero = build(&app, &cache, &work.path().join("zero.tar"), &[]);
    let later = build_at_epoch(
        &app,
        &cache,
        &work.path().join("later.tar"),
        &[],
        1_700_000_000,
    );
    assert_ne!(zero["manifest_digest"], later["manifest_digest"]);
    // The base keeps its own time: it is shared by every app, whatever their epoch.
    let (zero, later) = (layer_digests(&zero), layer_digests(&later));
    assert_eq!(zero[..zero.len() - 2], later[..later.len() - 2]);
}

/// Run `nua-pack build` expecting failure; return stderr.
fn build_fails(app: &Path, extra: &[&str], cache: &Path) -> String {
    let out = run(nua_pack()
        .arg("build")
        .arg(app)
        .args(extra)
        .env("NUA_CACHE_DIR", cache));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit 1, stderr:\n{stderr}"
    );
    assert!(stderr.starts_with("error: "), "stderr: {stderr}");
    stderr
}

#[test]
fn a_missing_config_or_an_unknown_flag_says_what_to_do() {
    let work = temp_dir();
    // `--base-rootfs` is gone: bases are bootstrapped by nua-pack itself. A usage error.
    let out = run(nua_pack()
        .arg("build")
        .arg(fixture_app("static-site"))
        .args(["--base-rootfs", "rootfs.tar"]));
    assert_eq!(out.status.code(), Some(2));

    let empty = work.path().join("empty-app");
    std::fs::create_dir(&empty).unwrap();
    let stderr = build_fails(&empty, &[], &work.path().join("cache"));
    assert!(stderr.contains("nua-config"), "{stderr}");
    assert!(stderr.contains(empty.to_str().unwrap()), "{stderr}");
}

#[test]
fn tags_name_the_image_in_both_indexes() {
    let work = temp_dir();
    let tarball = work.path().join("tagged.tar");
    let cache = cache_in(work.path());
    let result = build(
        &fixture_app("static-site"),
        &cache,
        &tarball,
        &["-t", "registry.example:5000/team/site:v2", "--tag", "site"],
    );
    assert_eq!(result["image"], "registry.example:5000/team/site:v2");
    let layout = unpack(&tarball, work.path());
    let docker: Value =
        serde_json::from_slice(&std::fs::read(layout.join("manifest.json")).unwrap()).unwrap();
    let repo_tags = docker[0]["RepoTags"].to_string();
    assert!(
        repo_tags.contains("registry.example:5000/team/site:v2"),
        "{repo_tags}"
    );
    assert!(repo_tags.contains("site:latest"), "{repo_tags}");
    let index = std::fs::read_to_string(layout.join("index.json")).unwrap();
    assert!(index.contains("docker.io/library/site:latest"), "{index}");

    let stderr = build_fails(
        &fixture_app("static-site"),
        &[
            "-t",
            "Not A Name",
            "--output",
            work.path().join("never.tar").to_str().unwrap(),
        ],
        &cache,
    );
    assert!(
        stderr.contains("`Not A Name` is not a valid image name"),
        "{stderr}"
    );
    assert!(!work.path().join("never.tar").exists());
}

/// After a change that keeps every file's bytes, a build reusing the cache must give the
/// image a build from an empty cache gives: the cache key sees what the layer sees.
#[test]
fn a_warm_cache_builds_what_a_cold_one_would() {
    let work = temp_dir();
    let app = work.path().join("app");
    copy_tree(&fixture_app("static-site"), &app);
    let warm = cache_in(&work.path().join("warm"));
    let epoch = 1_700_000_000;
    let mut cold_caches = 0;
    let mut check = |what: &str| {
        let out = work.path().join("image.tar");
        let warm_build = build_at_epoch(&app, &warm, &out, &[], epoch);
        cold_caches += 1;
        let cold = cache_in(&work.path().join(format!("cold-{cold_caches}")));
        let cold_build = build_at_epoch(&app, &cold, &out, &[], epoch);
        assert_eq!(
            warm_build["manifest_digest"], cold_build["manifest_digest"],
            "after {what}, the cached build differs from a fresh one"
        );
        layer(&warm_build, "source")["digest"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mut seen = vec![check("nothing")];
    let changed = |seen: &mut Vec<String>, what: &str, digest: String| {
        assert!(
            !seen.contains(&digest),
            "{what} did not change the source layer"
        );
        seen.push(digest);
    };

    // Modes are normalized the way git records them (only the executable bit counts), so a
    // checkout under another umask gives the same image.
    run_ok(Command::new("chmod").arg("700").arg(&app));
    run_ok(Command::new("chmod").arg("g+w").arg(app.join("index.html")));
    assert_eq!(&check("chmod 700 and g+w"), seen.last().unwrap());
    run_ok(Command::new("chmod").arg("+x").arg(app.join("about.txt")));
    let digest = check("chmod +x");
    changed(&mut seen, "chmod +x", digest);

    std::fs::hard_link(app.join("about.txt"), app.join("about-again.txt")).unwrap();
    let digest = check("a hard link");
    changed(&mut seen, "a hard link", digest);

    // Times are not part of the source, as git keeps none: every file gets
    // SOURCE_DATE_EPOCH, older or newer.
    run_ok(
        Command::new("touch")
            .args(["-d", "2020-01-01 00:00:00"])
            .arg(app.join("index.html")),
    );
    assert_eq!(&check("an mtime before the epoch"), seen.last().unwrap());
}

#[test]
fn an_output_inside_the_app_folder_is_not_packed_into_the_next_image() {
    let work = temp_dir();
    let app = work.path().join("app");
    copy_tree(&fixture_app("static-site"), &app);
    let cache = cache_in(work.path());
    let out = app.join("image.tar");
    let first = build(&app, &cache, &out, &[]);
    let second = build(&app, &cache, &out, &[]);
    assert_eq!(first["manifest_digest"], second["manifest_digest"]);
    assert_eq!(layer(&second, "source")["cached"], true);
}

#[test]
fn bad_outputs_are_refused_before_building() {
    let work = temp_dir();
    let cache = cache_in(work.path());
    let stderr = build_fails(
        &fixture_app("static-site"),
        &["--output", work.path().to_str().unwrap()],
        &cache,
    );
    assert!(stderr.contains("is a folder"), "{stderr}");
    assert!(
        stderr.contains("hint: give `--output` a file name"),
        "{stderr}"
    );

    // A folder that does not exist yet is made.
    let nested = work.path().join("dist/images/site.tar");
    build(&fixture_app("static-site"), &cache, &nested, &[]);
    assert!(nested.is_file());
}

/// A relative `NUA_CACHE_DIR` is taken from the folder `nua-pack` runs in, also by the
/// sandbox (which changes its working folder before it mounts a root from the cache).
#[test]
fn a_relative_cache_folder_works_for_steps_that_run_commands() {
    let work = temp_dir();
    let cache = cache_in(work.path());
    let relative = cache.strip_prefix(work.path()).unwrap();
    let app = work.path().join("app");
    copy_tree(&fixture_app("flask-hello"), &app);
    let out = work.path().join("flask.tar");
    let stdout = run_ok(build_command(&app, relative, &out, &[]).current_dir(work.path()));
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(result["layers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["step"] == "dependencies"));
    assert!(out.is_file());
}
