//! Builds that meet a registry: `nua-pack build --push`, and `wrap` builds whose `base-image`
//! is pulled from the real reference registry (Debian's `docker-registry`), then run on Docker.

mod common;

use std::path::Path;
use std::process::Command;

use common::registry::{Auth, Registry};
use common::*;
use nua_oci::{self as oci, ContainerConfig, ImageSpec};
use serde_json::Value;

fn build_json(args: &[&str], app: &Path, cache: &Path) -> Value {
    let stdout = run_ok(
        nua_pack()
            .arg("build")
            .arg(app)
            .args(args)
            .arg("--json")
            .env("NUA_CACHE_DIR", cache)
            .env("SOURCE_DATE_EPOCH", "0"),
    );
    // One JSON event per line, the result last.
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("build --json printed no JSON ({e}):\n{stdout}"))
}

/// An app folder under `dir` whose nua-config wraps `base_image`.
fn wrap_app(dir: &Path, id: &str, version: &str, base_image: &str) -> std::path::PathBuf {
    let app = dir.join("app");
    std::fs::create_dir(&app).unwrap();
    let config = format!(
        "[metadata]\nid = \"{id}\"\nversion = \"{version}\"\nrelease = 1\n\
         title = \"Wrapped {id}\"\nauthor = \"Nua testers\"\ntagline = \"Wrapped\"\n\
         website = \"https://nua.rocks/\"\ntags = [\"test\"]\n\n\
         [build]\nlicense = \"MIT\"\nbase-image = \"{base_image}\"\n"
    );
    std::fs::write(app.join("nua-config.toml"), config).unwrap();
    app
}

fn skopeo_digest(host: &str, repo_tag: &str) -> String {
    let out = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{host}/{repo_tag}")),
    );
    let inspect: Value = serde_json::from_str(&out).unwrap();
    inspect["Digest"].as_str().unwrap().to_owned()
}

#[test]
fn build_push_sends_the_image_that_skopeo_then_reads() {
    let registry = Registry::start(Auth::None);
    let host = registry.host();
    let work = temp_dir();
    let cache = cache_with_base("python", work.path());
    let target = format!("{host}/nua/static-site:1.0-1");
    let out = work.path().join("site.tar");
    let args = [
        "--push",
        &target,
        "--insecure-registry",
        &host,
        "-o",
        out.to_str().unwrap(),
    ];
    let result = build_json(&args, &fixture_app("static-site"), &cache);
    let digest = result["manifest_digest"].as_str().unwrap();
    assert_eq!(result["pushed"]["digest"], digest);
    assert!(result["pushed"]["uploaded"].as_u64().unwrap() > 0);
    assert_eq!(skopeo_digest(&host, "nua/static-site:1.0-1"), digest);

    // Nothing new: the same image pushed again sends no blob.
    let again = build_json(&args, &fixture_app("static-site"), &cache);
    assert_eq!(again["pushed"]["uploaded"], 0);
}

/// An upstream image with an entrypoint of its own, on the bookworm base: made with the oci
/// module and pushed with skopeo, as a third party would publish it.
fn publish_upstream(host: &str, work: &Path) {
    use nua_build::base::{self, BaseOptions, Catalog};
    let cache = shared_base("debian-bookworm");
    let store = oci::BlobStore::open(&cache).unwrap();
    let options = BaseOptions {
        cache_dir: cache.clone(),
        layer: oci::LayerOptions::default(),
        registry: Default::default(),
        remote: Default::default(),
    };
    let catalog = Catalog::builtin().unwrap();
    let (_, built) = base::build(
        &catalog,
        "debian-bookworm",
        None,
        &store,
        &options,
        &mut nua_build::Silent,
    )
    .unwrap();
    let config = ContainerConfig {
        entrypoint: Some(vec!["/bin/echo".into(), "upstream entrypoint:".into()]),
        cmd: Some(vec!["upstream-cmd".into()]),
        env: vec!["UPSTREAM=1".into(), "PATH=/usr/bin:/bin".into()],
        ..ContainerConfig::default()
    };
    let layers = built.layers.into_iter().map(|l| l.layer).collect();
    let image = oci::write_image(&store, &ImageSpec::new(layers, config, 1_700_000_000)).unwrap();
    let layout = work.join("upstream");
    let name = oci::ImageName::parse("upstream/app:2").unwrap();
    oci::write_layout_dir(&store, &image, &[name], &layout).unwrap();
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:2", layout.display()))
            .arg(format!("docker://{host}/upstream/app:2")),
    );
}

#[test]
fn wrap_pulls_the_image_and_adds_only_the_metadata_layer() {
    test_env();
    let registry = Registry::start(Auth::None);
    let host = registry.host();
    let work = temp_dir();
    publish_upstream(&host, work.path());
    let upstream_layers = {
        let out = run_ok(
            Command::new("skopeo")
                .args(["inspect", "--tls-verify=false"])
                .arg(format!("docker://{host}/upstream/app:2")),
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        v["Layers"].as_array().unwrap().clone()
    };

    let app = wrap_app(
        work.path(),
        "wrapped-app",
        "2",
        &format!("{host}/upstream/app:{{version}}"),
    );
    let cache = work.path().join("cache");
    let tarball = work.path().join("wrapped.tar");
    let args = [
        "--insecure-registry",
        &host,
        "-o",
        tarball.to_str().unwrap(),
    ];
    let result = build_json(&args, &app, &cache);
    let layers = result["layers"].as_array().unwrap();
    assert_eq!(layers.len(), upstream_layers.len() + 1, "{result}");
    for (ours, theirs) in layers.iter().zip(&upstream_layers) {
        assert_eq!(&ours["digest"], theirs, "an upstream layer was rewritten");
    }
    assert_eq!(layers.last().unwrap()["step"], "metadata");

    // Docker runs it with the upstream entrypoint and command; Nua's labels and files are on.
    run_ok(Command::new("docker").arg("load").arg("-i").arg(&tarball));
    let _image = LoadedImage("nua-wrapped-app:2-1".into());
    let out = run_ok(Command::new("docker").args(["run", "--rm", "nua-wrapped-app:2-1"]));
    assert_eq!(out.trim(), "upstream entrypoint: upstream-cmd");
    let inspect = run_ok(Command::new("docker").args([
        "image",
        "inspect",
        "-f",
        "{{json .Config}}",
        "nua-wrapped-app:2-1",
    ]));
    let config: Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(config["Labels"]["APP_ID"], "wrapped-app");
    assert!(config["Env"].to_string().contains("UPSTREAM=1"), "{config}");
    let meta = run_ok(Command::new("docker").args([
        "run",
        "--rm",
        "--entrypoint",
        "cat",
        "nua-wrapped-app:2-1",
        "/nua/metadata/nua-config.json",
    ]));
    let meta: Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["build"]["method"], "wrap");

    // A second build pulls nothing: every blob is in the store already.
    let again = build_json(&args, &app, &cache);
    assert_eq!(again["manifest_digest"], result["manifest_digest"]);
}

#[test]
fn a_wrap_build_names_the_image_it_cannot_pull() {
    test_env();
    let registry = Registry::start(Auth::None);
    let host = registry.host();
    let work = temp_dir();
    let app = wrap_app(
        work.path(),
        "missing",
        "1",
        &format!("{host}/nowhere/app:1"),
    );
    let out = run(nua_pack()
        .arg("build")
        .arg(&app)
        .args(["--insecure-registry", &host, "-o"])
        .arg(work.path().join("never.tar"))
        .env("NUA_CACHE_DIR", work.path().join("cache")));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("`{host}/nowhere/app:1`")),
        "{stderr}"
    );
    assert!(!work.path().join("never.tar").exists());
}

#[path = "wrap/image_bases.rs"]
mod image_bases;
