//! The runtime side on the real Docker Engine: `nua load`.
#![cfg(feature = "runtime")]

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

fn nua() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nua"))
}

#[test]
fn nua_load_streams_a_built_tarball_into_docker() {
    let work = temp_dir();
    let tarball = work.path().join("image.tar");
    let built = run_ok(
        nua()
            .arg("build")
            .arg(fixture_app("static-site"))
            .arg("--output")
            .arg(&tarball)
            .arg("--json")
            .env("NUA_CACHE_DIR", cache_with_base("python", work.path())),
    );
    let built: Value = serde_json::from_str(built.lines().last().unwrap()).unwrap();

    // `--full`: every layer, whatever Docker already has (in an archive written from what
    // was checked: the same blobs, without the OCI index).
    let loaded = run_ok(nua().arg("load").arg(&tarball).arg("--json").arg("--full"));
    let _image = LoadedImage("nua-static-site:1.0-1".into());
    let loaded: Value = serde_json::from_str(&loaded).unwrap();
    assert_eq!(loaded["tags"][0], "nua-static-site:1.0-1");
    assert_eq!(loaded["image_id"], built["config_digest"]);
    let sent = loaded["bytes_sent"].as_u64().unwrap();
    let size = std::fs::metadata(&tarball).unwrap().len();
    assert!(
        sent * 10 > size * 9 && sent < size + 64 * 1024,
        "{sent} of {size}"
    );
    assert_eq!(loaded["layers_sent"], loaded["layers"]);

    // Loaded again, thin: Docker has every layer, so only `manifest.json` and the config go.
    let again = run_ok(nua().arg("load").arg(&tarball).arg("--json"));
    let again: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["image_id"], built["config_digest"]);
    assert_eq!(again["layers_sent"], 0);
    assert!(again["bytes_sent"].as_u64().unwrap() < 64 * 1024, "{again}");
}

#[test]
fn nua_load_refuses_what_is_not_an_image() {
    test_env();
    let work = temp_dir();
    let bogus = work.path().join("not-an-image.tar");
    std::fs::write(&bogus, b"this is not a tar archive").unwrap();
    let out = run(nua().arg("load").arg(&bogus));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not-an-image.tar"), "{stderr}");
    assert!(stderr.contains("not a tar archive"), "{stderr}");
}

#[test]
fn nua_load_without_a_daemon_says_how_to_start_one() {
    let work = temp_dir();
    let out = run(nua().arg("load").arg(work.path().join("x.tar")).env(
        "DOCKER_HOST",
        format!("unix://{}/no.sock", work.path().display()),
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot reach the Docker daemon"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: start Docker"), "{stderr}");
}

#[test]
fn nua_load_refuses_a_tampered_layer_before_docker_sees_it() {
    let work = temp_dir();
    let tarball = work.path().join("image.tar");
    run_ok(
        nua()
            .arg("build")
            .arg(fixture_app("static-site"))
            .arg("--output")
            .arg(&tarball)
            .arg("-q")
            .env("NUA_CACHE_DIR", cache_with_base("python", work.path())),
    );
    // Unpack, flip one byte of the last layer, pack again.
    let layout = unpack(&tarball, work.path());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(layout.join("manifest.json")).unwrap()).unwrap();
    let layers = manifest[0]["Layers"].as_array().unwrap();
    let layer = layout.join(layers.last().unwrap().as_str().unwrap());
    let mut bytes = std::fs::read(&layer).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&layer, bytes).unwrap();
    let tampered = work.path().join("tampered.tar");
    run_ok(
        Command::new("tar")
            .arg("-cf")
            .arg(&tampered)
            .arg("-C")
            .arg(&layout)
            .arg("."),
    );

    let out = run(nua().arg("load").arg(&tampered));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nothing was loaded"), "{stderr}");
    let digest = layers
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .trim_start_matches("blobs/sha256/");
    assert!(
        stderr.contains(digest),
        "the error does not name the layer: {stderr}"
    );
}

/// The layers (paths in the tarball) and DiffIDs of the image in unpacked tarball `layout`.
fn layers_and_diff_ids(layout: &std::path::Path) -> (Vec<String>, Vec<String>) {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(layout.join("manifest.json")).unwrap()).unwrap();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    let config = manifest[0]["Config"].as_str().unwrap();
    let config: Value =
        serde_json::from_slice(&std::fs::read(layout.join(config)).unwrap()).unwrap();
    (
        strings(&manifest[0]["Layers"]),
        strings(&config["rootfs"]["diff_ids"]),
    )
}

#[test]
fn nua_load_of_a_rebuilt_image_is_thin() {
    let work = temp_dir();
    let cache = cache_with_base("python", work.path());
    let app = work.path().join("app");
    copy_tree(&fixture_app("static-site"), &app);
    let tag = format!("nua-test-thin-load-{}:1", std::process::id());
    let build = |out: &std::path::Path| -> Value {
        let stdout = run_ok(
            nua()
                .arg("build")
                .arg(&app)
                .arg("--output")
                .arg(out)
                .arg("-t")
                .arg(&tag)
                .arg("--json")
                .env("NUA_CACHE_DIR", &cache),
        );
        serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
    };
    let _image = LoadedImage(tag.clone());

    let first = work.path().join("first.tar");
    build(&first);
    let loaded = run_ok(nua().arg("load").arg(&first).arg("--json"));
    let loaded: Value = serde_json::from_str(&loaded).unwrap();
    assert_eq!(loaded["tags"][0], tag.as_str());

    // A line of the page no other image has: the layers from the source up are new.
    let page = app.join("index.html");
    let unique = format!(
        "Thin load {} {}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let text = std::fs::read_to_string(&page).unwrap();
    let edited = text.replace("Hello from a Nua static site", &unique);
    assert_ne!(edited, text);
    std::fs::write(&page, edited).unwrap();
    let second = work.path().join("second.tar");
    let built = build(&second);

    let loaded = run_ok(nua().arg("load").arg(&second).arg("--json"));
    let loaded: Value = serde_json::from_str(&loaded).unwrap();
    assert_eq!(loaded["tags"][0], tag.as_str(), "{loaded}");
    assert_eq!(loaded["image_id"], built["config_digest"], "{loaded}");
    assert!(loaded.get("fell_back").is_none(), "{loaded}");

    let (_, before) = layers_and_diff_ids(&unpack(&first, &work.path().join("first")));
    let layout = unpack(&second, &work.path().join("second"));
    let (layers, after) = layers_and_diff_ids(&layout);
    assert_eq!(layers.len(), after.len());
    let same = before
        .iter()
        .zip(&after)
        .take_while(|(a, b)| a == b)
        .count();
    assert!(same > 0 && same < after.len(), "{before:?}\n{after:?}");
    assert_eq!(loaded["layers"], after.len(), "{loaded}");
    assert_eq!(loaded["layers_sent"], after.len() - same, "{loaded}");
    let new_bytes: u64 = layers[same..]
        .iter()
        .map(|l| std::fs::metadata(layout.join(l)).unwrap().len())
        .sum();
    let sent = loaded["bytes_sent"].as_u64().unwrap();
    let size = std::fs::metadata(&second).unwrap().len();
    assert!(
        sent < new_bytes + (1 << 20),
        "{sent} bytes sent for {new_bytes} bytes of new layers"
    );
    assert!(
        sent * 10 < size,
        "{sent} bytes sent of a {size} bytes tarball"
    );

    let name = format!("nua-test-thin-load-{}", std::process::id());
    let (_container, port) = common::docker::run_published(&tag, &name, 8080);
    let (status, body) = common::docker::wait_for_http(port, "/");
    assert!(status.contains("200"), "GET / answered {status}: {body}");
    assert!(body.contains(&unique), "{body}");
}
