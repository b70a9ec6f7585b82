//! Faults between client and registry (`common::proxy`), and token authentication.

use std::time::Duration;

use nua_oci::http::Retry;
use nua_oci::{BlobStore, Descriptor};
use nua_registry::{self as registry, Client, ClientOptions, PullOptions, PushOptions, Reference};

use super::common::proxy::{Fault, FaultProxy};
use super::common::registry::{Auth, Registry};
use super::common::{assert_store_intact, temp_dir};
use super::{image, noise, pack, pull_json, push_noise, with_stdin};

/// A client through `proxy` with short backoffs, so retries do not slow the tests down.
fn fast_client(host: &str) -> Client {
    Client::new(ClientOptions {
        insecure_registries: vec![host.to_owned()],
        retry: Retry {
            first_backoff: Duration::from_millis(20),
            ..Retry::default()
        },
        ..ClientOptions::default()
    })
    .unwrap()
}

/// A registry holding a three-layer image at `faults/app:1`, and a proxy in front of it.
fn served() -> (Registry, FaultProxy, tempfile::TempDir, nua_oci::ImageRef) {
    let registry = Registry::start(Auth::None);
    let work = temp_dir();
    let store = BlobStore::open(work.path().join("push-cache")).unwrap();
    let target = format!("{}/faults/app:1", registry.host());
    let image = push_noise(
        &fast_client(&registry.host()),
        &store,
        &target,
        40..43,
        400_000,
    );
    let proxy = FaultProxy::start(&registry.host());
    (registry, proxy, work, image)
}

fn blob_path(d: &Descriptor) -> String {
    format!("/blobs/{}", d.digest)
}

/// The statuses the proxy saw for requests of `method` whose path contains `part`.
fn statuses(proxy: &FaultProxy, method: &str, part: &str) -> Vec<u16> {
    let requests = proxy.requests();
    let picked = requests
        .iter()
        .filter(|(m, p, _)| m == method && p.contains(part));
    picked.map(|(_, _, s)| *s).collect()
}

#[test]
fn resets_and_server_errors_end_in_success_with_range_resumes_and_retries() {
    let (_registry, proxy, work, image) = served();
    let [l0, l1, l2] = [0, 1, 2].map(|i| blob_path(&image.layers[i]));
    proxy.inject(
        "GET",
        &l0,
        Fault::Reset {
            after_bytes: 150_000,
        },
        1,
    );
    proxy.inject("GET", &l1, Fault::Status(500), 1);
    proxy.inject("GET", &l1, Fault::Status(503), 1);
    proxy.inject(
        "GET",
        &l2,
        Fault::TooMany {
            retry_after_secs: 1,
        },
        1,
    );
    proxy.inject(
        "GET",
        &l2,
        Fault::Truncate {
            after_bytes: 100_000,
        },
        1,
    );
    let store = BlobStore::open(work.path().join("cache")).unwrap();
    let reference = Reference::parse(&format!("{}/faults/app:1", proxy.host())).unwrap();
    let client = fast_client(&proxy.host());
    let pulled = registry::pull(&client, &reference, &store, &PullOptions::default(), &()).unwrap();
    assert_eq!(pulled.image, image);
    assert_store_intact(store.root());
    // The reset and the truncated blobs were resumed from where they broke, not restarted.
    assert_eq!(statuses(&proxy, "GET", &l0), [200, 206]);
    assert_eq!(statuses(&proxy, "GET", &l1), [500, 503, 200]);
    assert_eq!(statuses(&proxy, "GET", &l2), [429, 200, 206]);
}

#[test]
fn a_broken_chunked_upload_resumes_from_the_sessions_range() {
    let registry = Registry::start(Auth::None);
    let proxy = FaultProxy::start(&registry.host());
    let work = temp_dir();
    let store = BlobStore::open(work.path().join("cache")).unwrap();
    let image = image(&store, &[("big.bin", noise(50, 2_000_000))]);
    proxy.inject(
        "PATCH",
        "/blobs/uploads/",
        Fault::Reset { after_bytes: 0 },
        1,
    );
    proxy.inject("PATCH", "/blobs/uploads/", Fault::Status(503), 1);
    let options = PushOptions {
        monolithic_max: 512 << 10,
        chunk_size: 256 << 10,
        ..PushOptions::default()
    };
    let reference = Reference::parse(&format!("{}/resume/app:1", proxy.host())).unwrap();
    let client = fast_client(&proxy.host());
    let pushed = registry::push(&client, &store, &image, &reference, &options, &()).unwrap();
    assert_eq!(pushed.digest, image.manifest.digest);
    // After each break the client asked the session where it stood.
    assert!(
        statuses(&proxy, "GET", "/blobs/uploads/").contains(&204),
        "{:?}",
        proxy.requests()
    );
    // What the registry stored reads back intact.
    let fresh = BlobStore::open(work.path().join("fresh")).unwrap();
    let direct = Reference::parse(&format!("{}/resume/app:1", registry.host())).unwrap();
    let client = fast_client(&registry.host());
    let pulled = registry::pull(&client, &direct, &fresh, &PullOptions::default(), &()).unwrap();
    assert_eq!(pulled.image, image);
}

#[test]
fn corrupt_blobs_are_refused_naming_both_digests_and_nothing_is_stored() {
    let (_registry, proxy, work, image) = served();
    let layer = &image.layers[1];
    proxy.inject("GET", &blob_path(layer), Fault::FlipByte { at: 1000 }, 100);
    let cache = work.path().join("cache");
    let stderr = failed_pull(&cache, &proxy);
    assert!(
        stderr.contains(&format!("expected `{}`", layer.digest)),
        "{stderr}"
    );
    assert!(stderr.contains("got `sha256:"), "{stderr}");
    assert_store_intact(&cache);
    assert!(!BlobStore::open(&cache).unwrap().contains(&layer.digest));

    // Cut short with no byte of progress on every attempt: refused after the retries, saying
    // where the body broke, nothing stored; then a clean pull completes.
    let (registry, proxy, _work, image) = served();
    let layer = &image.layers[2];
    proxy.inject(
        "GET",
        &blob_path(layer),
        Fault::Truncate { after_bytes: 0 },
        100,
    );
    let cache = work.path().join("cache2");
    let stderr = failed_pull(&cache, &proxy);
    assert!(
        stderr.contains("after 4 retries") && stderr.contains("at byte 0"),
        "{stderr}"
    );
    assert!(!BlobStore::open(&cache).unwrap().contains(&layer.digest));
    assert_store_intact(&cache);
    let direct = format!("{}/faults/app:1", registry.host());
    let pulled = pull_json(&registry.host(), &mut pack(&cache), &direct, &[]);
    assert_eq!(pulled["digest"], image.manifest.digest.to_string());
    assert_store_intact(&cache);
}

/// `nua-pack pull` of the served image through `proxy`, which must fail (exit 1); its stderr.
fn failed_pull(cache: &std::path::Path, proxy: &FaultProxy) -> String {
    let target = format!("{}/faults/app:1", proxy.host());
    let out = super::common::run(pack(cache).args([
        "pull",
        &target,
        "--insecure-registry",
        &proxy.host(),
    ]));
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn token_auth_push_and_pull_with_password_stdin() {
    let registry = Registry::start(Auth::token("bob", "t0ken-pw"));
    let work = temp_dir();
    let tarball = super::image_tarball(work.path(), "tok", &[("t.txt", b"token".to_vec())]);
    let cache = work.path().join("cache");
    let target = format!("{}/tok/app:1", registry.host());
    let with_password = |cmd: &mut std::process::Command, password: &str| {
        with_stdin(
            cmd.args(["--username", "bob", "--password-stdin"]),
            password,
        )
    };
    let push = |password: &str| {
        let host = registry.host();
        let cmd = &mut pack(&cache);
        cmd.arg("push")
            .arg(&tarball)
            .args([&target, "-q", "--insecure-registry", &host]);
        with_password(cmd, password)
    };
    let out = push("t0ken-pw\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scopes = registry.token_requests().into_iter().flat_map(|r| r.scopes);
    assert!(scopes
        .into_iter()
        .any(|s| s == "repository:tok/app:pull,push"));

    let out = push("wrong\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains(&registry.host()) && stderr.contains("--password-stdin"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong"), "{stderr}");

    let fresh = work.path().join("fresh");
    let cmd = &mut pack(&fresh);
    cmd.args([
        "pull",
        &target,
        "--json",
        "--insecure-registry",
        &registry.host(),
    ]);
    let out = with_password(cmd, "t0ken-pw");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
