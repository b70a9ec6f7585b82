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

    let loaded = run_ok(nua().arg("load").arg(&tarball).arg("--json"));
    let _image = LoadedImage("nua-static-site:1.0-1".into());
    let loaded: Value = serde_json::from_str(&loaded).unwrap();
    assert_eq!(loaded["tags"][0], "nua-static-site:1.0-1");
    assert_eq!(loaded["image_id"], built["config_digest"]);
    assert_eq!(
        loaded["bytes_sent"].as_u64().unwrap(),
        std::fs::metadata(&tarball).unwrap().len()
    );
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
