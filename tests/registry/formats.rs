//! Manifest formats a registry serves besides our own: Docker schema 2 (as skopeo writes it
//! with `--format v2s2`), multi-platform indexes, and pulls by digest, whose bytes must
//! match the digest asked for.

use std::process::Command;

use super::common::proxy::{Fault, FaultProxy};
use super::common::registry::{Auth, Registry};
use super::common::{noise, run, run_ok, temp_dir};
use super::{image, image_tarball, json, pack, pull_json, skopeo_digest};
use nua_oci::{self as oci, BlobStore, ImageArchive, ImageName, ReadOptions};

/// The small image written as an OCI layout at `dir/layout` (tag `1`), and its ref.
fn layout(dir: &std::path::Path, store: &BlobStore, seed: u8) -> oci::ImageRef {
    let image = image(store, &[("f.txt", vec![seed; 4096])]);
    let names = [ImageName::parse("app:1").unwrap()];
    oci::write_layout_dir(store, &image, &names, &dir.join("layout")).unwrap();
    image
}

/// skopeo copies `source` (an `oci:` reference) to `docker://DEST`, with `extra` flags.
fn skopeo_copy(source: &str, dest: &str, extra: &[&str]) {
    run_ok(
        Command::new("skopeo")
            .args(["copy", "-q", "--dest-tls-verify=false"])
            .args(extra)
            .arg(source)
            .arg(format!("docker://{dest}")),
    );
}

#[test]
fn docker_schema2_pulls_by_tag_and_by_digest() {
    let registry = Registry::start(Auth::None);
    let host = registry.host();
    let work = temp_dir();
    let store = BlobStore::open(work.path().join("build-cache")).unwrap();
    layout(work.path(), &store, 7);
    let source = format!("oci:{}:1", work.path().join("layout").display());
    skopeo_copy(
        &source,
        &format!("{host}/v2s2/app:1"),
        &["--format", "v2s2"],
    );
    let digest = skopeo_digest(&format!("{host}/v2s2/app:1"));

    let cache = work.path().join("cache");
    let out = work.path().join("by-tag.tar");
    let pulled = pull_json(
        &host,
        &mut pack(&cache),
        &format!("{host}/v2s2/app:1"),
        &["-o".as_ref(), out.as_os_str()],
    );
    assert_eq!(pulled["digest"], digest.as_str());
    let info = ImageArchive::open(&out)
        .unwrap()
        .image(ReadOptions {
            verify_diff_ids: true,
        })
        .unwrap();
    assert_eq!(info.layers.len(), 1);

    // By digest: the same manifest, and the tarball carries no made-up `latest` name.
    let out = work.path().join("by-digest.tar");
    let pulled = pull_json(
        &host,
        &mut pack(&cache),
        &format!("{host}/v2s2/app@{digest}"),
        &["-o".as_ref(), out.as_os_str()],
    );
    assert_eq!(pulled["digest"], digest.as_str());
    let index: serde_json::Value = serde_json::from_str(&run_ok(
        Command::new("tar").arg("-xOf").arg(&out).arg("index.json"),
    ))
    .unwrap();
    assert!(!index.to_string().contains("latest"), "{index}");
}

#[test]
fn a_multi_platform_index_gives_the_platform_asked_for() {
    let registry = Registry::start(Auth::None);
    let host = registry.host();
    let work = temp_dir();
    let store = BlobStore::open(work.path().join("build-cache")).unwrap();
    let amd64 = layout(work.path(), &store, 1);
    // An arm64 image beside it, and an index of both under the tag.
    let arm64 = {
        let layer = {
            let mut w = oci::LayerWriter::new(&store, oci::LayerOptions::default()).unwrap();
            w.add_bytes("f.txt", &oci::Meta::new(0o644), &[2; 4096])
                .unwrap();
            w.finish().unwrap()
        };
        let mut spec = oci::ImageSpec::new(vec![layer], oci::ContainerConfig::default(), 0);
        spec.architecture = "arm64".into();
        oci::write_image(&store, &spec).unwrap()
    };
    let dir = work.path().join("layout");
    oci::write_layout_dir(&store, &arm64, &[], &dir).unwrap();
    let entry = |image: &oci::ImageRef, arch: &str| {
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": image.manifest.digest.to_string(),
            "size": image.manifest.size,
            "platform": {"architecture": arch, "os": "linux"},
        })
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(&arm64, "arm64"), entry(&amd64, "amd64")],
    });
    let bytes = serde_json::to_vec(&index).unwrap();
    let info = store.put_bytes(&bytes).unwrap();
    std::fs::copy(
        store.path(&info.digest),
        dir.join("blobs/sha256").join(info.digest.hex()),
    )
    .unwrap();
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": info.digest.to_string(),
            "size": info.size,
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }],
    });
    std::fs::write(dir.join("index.json"), top.to_string()).unwrap();
    let source = format!("oci:{}:multi", dir.display());
    skopeo_copy(&source, &format!("{host}/multi/app:1"), &["--all"]);

    let cache = work.path().join("cache");
    let target = format!("{host}/multi/app:1");
    let default = pull_json(&host, &mut pack(&cache), &target, &[]);
    assert_eq!(default["digest"], amd64.manifest.digest.to_string());
    let arm = pull_json(
        &host,
        &mut pack(&cache),
        &target,
        &["--platform".as_ref(), "linux/arm64".as_ref()],
    );
    assert_eq!(arm["digest"], arm64.manifest.digest.to_string());

    let out = run(pack(&cache).args([
        "pull",
        &target,
        "--insecure-registry",
        &host,
        "--platform",
        "linux/s390x",
    ]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("linux/s390x") && stderr.contains("linux/arm64"),
        "the error names what was asked and what there is: {stderr}"
    );
}

#[test]
fn a_manifest_that_does_not_match_its_digest_is_refused() {
    let registry = Registry::start(Auth::None);
    let work = temp_dir();
    let store = BlobStore::open(work.path().join("build-cache")).unwrap();
    let image = layout(work.path(), &store, 3);
    let source = format!("oci:{}:1", work.path().join("layout").display());
    skopeo_copy(&source, &format!("{}/flip/app:1", registry.host()), &[]);
    let proxy = FaultProxy::start(&registry.host());
    // A space in the JSON turned into `!`: still a manifest of the right size, other bytes.
    proxy.inject("GET", "/manifests/sha256:", Fault::FlipByte { at: 1 }, 10);
    let cache = work.path().join("cache");
    let target = format!("{}/flip/app@{}", proxy.host(), image.manifest.digest);
    let out = run(pack(&cache).args(["pull", &target, "--insecure-registry", &proxy.host()]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&image.manifest.digest.to_string()),
        "the error names the digest asked for: {stderr}"
    );
}

/// `NUA_REGISTRY_MIRROR` serves Docker Hub names: `nua-mirror:1` is `library/nua-mirror:1`,
/// fetched from the mirror (Docker Hub itself is not reachable from here at all).
#[test]
fn docker_hub_names_are_pulled_from_the_mirror() {
    let registry = Registry::start(Auth::None);
    let host = registry.host();
    let work = temp_dir();
    let store = BlobStore::open(work.path().join("build-cache")).unwrap();
    let image = layout(work.path(), &store, 9);
    let source = format!("oci:{}:1", work.path().join("layout").display());
    skopeo_copy(&source, &format!("{host}/library/nua-mirror:1"), &[]);
    let cache = work.path().join("cache");
    let out = run_ok(
        pack(&cache)
            .env("NUA_REGISTRY_MIRROR", format!("http://{host}"))
            .args(["pull", "nua-mirror:1", "--json"]),
    );
    let pulled: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(pulled["digest"], image.manifest.digest.to_string());
}

/// Issue 13: a manifest listing one layer 50 times costs one `HEAD` and one upload of that
/// layer, not 50 of each (4 of them at once), and the registry keeps the manifest as given.
#[test]
fn a_layer_repeated_50_times_is_checked_and_uploaded_once() {
    let registry = Registry::start(Auth::None);
    let work = temp_dir();
    let files = vec![("l.bin", noise(40, 100_000)); 50];
    let tarball = image_tarball(work.path(), "repeated", &files);
    let proxy = FaultProxy::start(&registry.host());
    let cache = work.path().join("cache");
    let target = format!("{}/repeated/app:1", proxy.host());
    let pushed = json(&run_ok(pack(&cache).arg("push").arg(&tarball).args([
        &target,
        "--json",
        "--insecure-registry",
        &proxy.host(),
    ])));
    let blobs = pushed["blobs"].as_array().unwrap();
    assert_eq!(
        blobs.len(),
        2,
        "the config and the layer, once each: {pushed}"
    );

    let requests = proxy.requests();
    let count = |method: &str, hex: &str| {
        let matching = |(m, path, _): &&(String, String, u16)| m == method && path.contains(hex);
        requests.iter().filter(matching).count()
    };
    for blob in blobs {
        let digest = blob["digest"].as_str().unwrap();
        let hex = digest.trim_start_matches("sha256:");
        assert_eq!(count("HEAD", hex), 1, "{digest}: {requests:?}");
        // The upload closes with `PUT …?digest=sha256%3AHEX`.
        assert_eq!(count("PUT", hex), 1, "{digest}: {requests:?}");
    }
    let sessions = requests
        .iter()
        .filter(|(m, path, _)| m == "POST" && path.contains("/blobs/uploads/"))
        .count();
    assert_eq!(
        sessions, 2,
        "one upload session per distinct blob: {requests:?}"
    );

    // A pull into an empty cache downloads each distinct blob once, too.
    let out = work.path().join("pulled.tar");
    let pulled = pull_json(
        &proxy.host(),
        &mut pack(&work.path().join("fresh")),
        &target,
        &["-o".as_ref(), out.as_os_str()],
    );
    assert_eq!(pulled["digest"], pushed["digest"]);
    let requests = proxy.requests();
    for blob in blobs {
        let hex = blob["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        let gets = requests
            .iter()
            .filter(|(m, path, _)| m == "GET" && path.ends_with(hex))
            .count();
        assert_eq!(gets, 1, "{hex}: {requests:?}");
    }
    let info = ImageArchive::open(&out)
        .unwrap()
        .image(ReadOptions {
            verify_diff_ids: true,
        })
        .unwrap();
    assert_eq!(info.layers.len(), 50);
    assert!(info
        .layers
        .iter()
        .all(|l| l.digest == info.layers[0].digest));
}

/// Issue 13: what exists as a symlink, or looks like a path, is a path to `inspect`: a
/// symlink loop is named as one, not reported as a bad image reference.
#[test]
fn inspect_of_a_symlink_loop_or_a_missing_path_names_the_path() {
    let work = temp_dir();
    let looped = work.path().join("loop.tar");
    std::os::unix::fs::symlink(&looped, &looped).unwrap();
    let cache = work.path().join("cache");
    let looped_arg = looped.display().to_string();
    for (target, why) in [
        (
            looped_arg.as_str(),
            format!("`{looped_arg}` is a symlink loop"),
        ),
        ("./missing.tar", "`./missing.tar` does not exist".to_owned()),
    ] {
        let out = run(pack(&cache).args(["inspect", target]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(&why), "{target}: {stderr}");
        assert!(!stderr.contains("reference"), "{target}: {stderr}");
        assert!(stderr.contains("hint: "), "{target}: {stderr}");
    }
}
