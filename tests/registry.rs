//! Pull, push and inspect against the real `docker-registry` (the reference distribution
//! server from Debian) on 127.0.0.1, started by `common::registry`, with skopeo as the
//! independent client and `common::proxy` injecting faults.

#[path = "registry/auth.rs"]
mod auth;
#[path = "registry/cache.rs"]
mod cache;
mod common;
#[path = "registry/faults.rs"]
mod faults;
#[path = "registry/formats.rs"]
mod formats;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::registry::{Auth, Registry};
use common::{assert_store_intact, noise, nua_pack, run, run_ok, temp_dir};
use nua_oci::{self as oci, BlobStore, ImageArchive, ImageName, ReadOptions};
use nua_registry::{
    self as registry, Client, ClientOptions, Outcome, PullOptions, PushOptions, Reference,
};
use serde_json::Value;

/// A client speaking plain HTTP to `host`.
fn client(host: &str) -> Client {
    Client::new(ClientOptions {
        insecure_registries: vec![host.to_owned()],
        ..ClientOptions::default()
    })
    .unwrap()
}

/// `nua-pack pull TARGET --json --insecure-registry HOST EXTRA…` through `cmd`.
fn pull_json(host: &str, cmd: &mut Command, target: &str, extra: &[&std::ffi::OsStr]) -> Value {
    let args = ["pull", target, "--json", "--insecure-registry", host];
    json(&run_ok(cmd.args(args).args(extra)))
}

/// A fresh registry, a client for it, a work folder and a blob store in it.
fn setup() -> (Registry, Client, tempfile::TempDir, BlobStore) {
    let registry = Registry::start(Auth::None);
    let client = client(&registry.host());
    let work = temp_dir();
    let store = BlobStore::open(work.path().join("push-cache")).unwrap();
    (registry, client, work, store)
}

/// An image of one layer per `(path, bytes)`, written with the `oci` module into `store`.
fn image(store: &BlobStore, files: &[(&str, Vec<u8>)]) -> oci::ImageRef {
    let opts = oci::LayerOptions {
        source_date_epoch: 1_700_000_000,
        ..oci::LayerOptions::default()
    };
    let layers = files
        .iter()
        .map(|(path, bytes)| {
            let mut layer = oci::LayerWriter::new(store, opts).unwrap();
            layer
                .add_bytes(path, &oci::Meta::new(0o644), bytes)
                .unwrap();
            layer.finish().unwrap()
        })
        .collect();
    let mut config = oci::ContainerConfig {
        cmd: Some(vec!["/bin/true".into()]),
        ..oci::ContainerConfig::default()
    };
    config.labels.insert("APP_ID".into(), "nua-test".into());
    oci::write_image(store, &oci::ImageSpec::new(layers, config, 1_700_000_000)).unwrap()
}

/// An image of one noise layer of `size` bytes per seed, pushed to `target`.
fn push_noise(
    client: &Client,
    store: &BlobStore,
    target: &str,
    seeds: std::ops::Range<u64>,
    size: usize,
) -> oci::ImageRef {
    let layers: Vec<(&str, Vec<u8>)> = seeds.map(|i| ("l.bin", noise(i, size))).collect();
    let image = image(store, &layers);
    let reference = Reference::parse(target).unwrap();
    registry::push(
        client,
        store,
        &image,
        &reference,
        &PushOptions::default(),
        &(),
    )
    .unwrap();
    image
}

/// Run `cmd` with `input` on its stdin; its output.
fn with_stdin(cmd: &mut Command, input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // A command that fails before reading its stdin closes it: not this test's concern.
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// The small test image as a tarball at `dir/name.tar`.
fn image_tarball(dir: &Path, name: &str, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let store = BlobStore::open(dir.join("build-cache")).unwrap();
    let image = image(&store, files);
    let out = dir.join(format!("{name}.tar"));
    let names = [ImageName::parse(&format!("{name}:1")).unwrap()];
    oci::write_tarball(&store, &image, &names, &out).unwrap();
    out
}

/// `nua-pack` with its own cache and an empty Docker config folder.
fn pack(cache: &Path) -> Command {
    let mut cmd = nua_pack();
    cmd.env("NUA_CACHE_DIR", cache)
        .env("DOCKER_CONFIG", cache.join("docker-config"))
        .env_remove("NUA_REGISTRY_MIRROR");
    cmd
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn skopeo_digest(reference: &str) -> String {
    let out = run_ok(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]));
    json(&out)["Digest"].as_str().unwrap().to_owned()
}

#[test]
fn push_is_read_back_by_skopeo_and_a_second_push_uploads_nothing() {
    let registry = Registry::start(Auth::None);
    let work = temp_dir();
    let files = [("a.bin", noise(1, 300_000)), ("b.bin", noise(2, 200_000))];
    let tarball = image_tarball(work.path(), "app", &files);
    let target = format!("{}/test/app:1", registry.host());
    let cache = work.path().join("cache");
    let push = || {
        json(&run_ok(pack(&cache).arg("push").arg(&tarball).args([
            &target,
            "--json",
            "--insecure-registry",
            &registry.host(),
        ])))
    };
    let first = push();
    let digest = first["digest"].as_str().unwrap().to_owned();
    assert!(first["uploaded"].as_u64().unwrap() > 500_000, "{first}");
    assert_eq!(skopeo_digest(&target), digest);

    // skopeo copies it back byte for byte: same manifest digest, and a layout we can read.
    let copy = work.path().join("copy");
    run_ok(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{target}"),
        &format!("oci:{}:1", copy.display()),
    ]));
    let info = ImageArchive::open(&copy)
        .unwrap()
        .image(ReadOptions {
            verify_diff_ids: true,
        })
        .unwrap();
    assert_eq!(info.manifest_descriptor.digest.to_string(), digest);

    let second = push();
    assert_eq!(second["digest"], first["digest"]);
    assert_eq!(second["uploaded"], 0, "{second}");
    for blob in second["blobs"].as_array().unwrap() {
        assert_eq!(blob["outcome"], "present", "{second}");
    }
}

#[test]
fn an_image_sharing_a_base_uploads_only_its_new_layers() {
    let (registry, client, _work, store) = setup();
    let base = ("base.bin", noise(10, 400_000));
    let a = image(&store, &[base.clone(), ("a.bin", noise(11, 1000))]);
    let b = image(&store, &[base, ("b.bin", noise(12, 50_000))]);
    let options = PushOptions::default();
    let push = |image, to: &str| {
        let reference = Reference::parse(&format!("{}/{to}", registry.host())).unwrap();
        registry::push(&client, &store, image, &reference, &options, &()).unwrap()
    };
    push(&a, "team/a:1");
    // Another repository of the same registry: the base layer is mounted, not sent.
    let pushed = push(&b, "team/b:1");
    let base_layer = &pushed.blobs[1];
    assert_eq!(base_layer.outcome, Outcome::Mounted, "{pushed:?}");
    let new_bytes: u64 = b.config.size + b.layers[1].size;
    assert_eq!(pushed.uploaded(), new_bytes, "{pushed:?}");
}

#[test]
fn chunked_uploads_round_trip_through_a_pull() {
    let (registry, client, work, store) = setup();
    let image = image(&store, &[("big.bin", noise(20, 3_000_000))]);
    let options = PushOptions {
        monolithic_max: 1 << 20,
        chunk_size: 256 << 10,
        ..PushOptions::default()
    };
    let reference = Reference::parse(&format!("{}/chunked/app:1", registry.host())).unwrap();
    let pushed = registry::push(&client, &store, &image, &reference, &options, &()).unwrap();
    assert_eq!(pushed.blobs[1].outcome, Outcome::Uploaded);
    assert_eq!(pushed.blobs[1].transferred, image.layers[0].size);

    let fresh = BlobStore::open(work.path().join("pull-cache")).unwrap();
    let pulled = registry::pull(&client, &reference, &fresh, &PullOptions::default(), &()).unwrap();
    assert_eq!(pulled.image, image);
    assert_store_intact(fresh.root());
    // A second pull finds everything in the store.
    let again = registry::pull(&client, &reference, &fresh, &PullOptions::default(), &()).unwrap();
    assert!(again
        .blobs
        .iter()
        .all(|b| b.outcome == Outcome::Present && b.transferred == 0));
}

#[test]
fn skopeo_pushes_a_base_image_we_pull_and_docker_loads() {
    let registry = Registry::start(Auth::None);
    let work = temp_dir();
    let shared = common::shared_base("debian-bookworm");
    let base = work.path().join("base.tar");
    run_ok(
        nua_pack()
            .args(["base", "build", "debian-bookworm", "--quiet", "-o"])
            .arg(&base)
            .env("NUA_CACHE_DIR", &shared),
    );
    let target = format!("{}/skopeo/base:bookworm", registry.host());
    run_ok(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        &format!("oci-archive:{}", base.display()),
        &format!("docker://{target}"),
    ]));
    let cache = work.path().join("cache");
    let out = work.path().join("pulled.tar");
    let pull = || {
        pull_json(
            &registry.host(),
            &mut pack(&cache),
            &target,
            &["-o".as_ref(), out.as_ref()],
        )
    };
    let first = pull();
    assert_eq!(first["digest"].as_str().unwrap(), skopeo_digest(&target));
    assert!(first["downloaded"].as_u64().unwrap() > 1_000_000, "{first}");
    ImageArchive::open(&out)
        .unwrap()
        .image(ReadOptions {
            verify_diff_ids: true,
        })
        .unwrap();
    assert_store_intact(&cache);
    let second = pull();
    assert_eq!(second["downloaded"], 0, "{second}");

    if run(Command::new("docker").arg("info")).status.success() {
        let loaded = run_ok(Command::new("docker").arg("load").arg("-i").arg(&out));
        let _image = common::LoadedImage(target.clone());
        assert!(loaded.contains(&target), "{loaded}");
    }
}

#[test]
fn a_killed_pull_leaves_no_partial_blob_and_the_next_one_completes() {
    let (registry, client, work, store) = setup();
    let target = format!("{}/killed/app:1", registry.host());
    let image = push_noise(&client, &store, &target, 30..34, 20_000_000);

    let cache = work.path().join("cache");
    let mut child = pack(&cache)
        .args([
            "pull",
            &target,
            "--quiet",
            "--insecure-registry",
            &registry.host(),
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once a blob is being written.
    let tmp = cache.join("tmp");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&tmp).map_or(true, |mut d| d.next().is_none()) {
        assert!(Instant::now() < deadline, "the pull never started a blob");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_store_intact(&cache);

    let pulled = pull_json(&registry.host(), &mut pack(&cache), &target, &[]);
    assert_eq!(pulled["digest"], image.manifest.digest.to_string());
    assert_store_intact(&cache);
}

#[test]
fn inspect_of_a_tarball_and_of_its_pushed_reference_agree() {
    let registry = Registry::start(Auth::None);
    let work = temp_dir();
    let files = [("a.txt", b"hello".to_vec())];
    let tarball = image_tarball(work.path(), "inspected", &files);
    let cache = work.path().join("cache");
    let from_tarball = run_ok(pack(&cache).arg("inspect").arg(&tarball).arg("--json"));
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&regex_escape(&work.path().display().to_string()), "[TMP]");
    settings.add_filter(&regex_escape(&registry.host()), "[REGISTRY]");
    settings.bind(|| insta::assert_snapshot!("inspect_tarball", from_tarball));

    let target = format!("{}/inspected/app:1", registry.host());
    run_ok(pack(&cache).arg("push").arg(&tarball).args([
        &target,
        "-q",
        "--insecure-registry",
        &registry.host(),
    ]));
    let from_registry = run_ok(pack(&cache).args([
        "inspect",
        &target,
        "--json",
        "--insecure-registry",
        &registry.host(),
    ]));
    settings.bind(|| insta::assert_snapshot!("inspect_reference", from_registry));
    let (a, b) = (json(&from_tarball), json(&from_registry));
    assert_eq!(a["digest"], b["digest"]);
    assert_eq!(a["layers"], b["layers"]);
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

#[test]
fn bad_references_and_missing_images_say_why() {
    let registry = Registry::start(Auth::None);
    let cache = temp_dir();
    for (reference, why) in [
        ("Debian", "repository names must be lowercase"),
        ("debian:", "a tag is"),
        ("ex_ample.com/app", "registry host"),
        ("debian@sha256:abc", "digest"),
    ] {
        let out = run(pack(cache.path()).args(["pull", reference]));
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{reference}: {stderr}");
    }
    let missing = format!("{}/nothing/here:1", registry.host());
    let out =
        run(pack(cache.path()).args(["pull", &missing, "--insecure-registry", &registry.host()]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not found on registry"), "{stderr}");
}
