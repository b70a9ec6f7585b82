//! Faults between client and registry (`common::proxy`), and token authentication.

use std::time::Duration;

use nua_oci::http::{LowSpeed, Retry};
use nua_oci::{BlobStore, Descriptor};
use nua_registry::{self as registry, Client, ClientOptions, PullOptions, PushOptions, Reference};

use super::common::proxy::{Fault, FaultProxy};
use super::common::registry::{Auth, Registry};
use super::common::{assert_store_intact, temp_dir};
use super::{image, noise, pack, pull_json, push_noise, with_stdin};

/// A client through `proxy` with short backoffs, so retries do not slow the tests down.
fn fast_client(host: &str) -> Client {
    client_with(host, LowSpeed::default())
}

/// [`fast_client`] with this low-speed limit.
fn client_with(host: &str, low_speed: LowSpeed) -> Client {
    Client::new(ClientOptions {
        insecure_registries: vec![host.to_owned()],
        retry: Retry {
            first_backoff: Duration::from_millis(20),
            ..Retry::default()
        },
        low_speed,
        ..ClientOptions::default()
    })
    .unwrap()
}

/// A low-speed limit that gives up on a trickle within a second or two.
const QUICK_STALL: LowSpeed = LowSpeed {
    bytes_per_sec: 1000,
    time: Duration::from_secs(1),
};

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
fn a_trickling_blob_stalls_naming_it_and_the_next_pull_resumes_what_it_kept() {
    let (registry, proxy, work, image) = served();
    let layer = &image.layers[0];
    let path = blob_path(layer);
    // The first attempt brings 150 kB at full speed, then trickles; every later one trickles
    // from its first byte.
    let trickle = |after_bytes| Fault::Trickle {
        after_bytes,
        every_ms: 300,
    };
    proxy.inject("GET", &path, trickle(150_000), 1);
    proxy.inject("GET", &path, trickle(0), 100);
    let cache = work.path().join("cache");
    let target = format!("{}/faults/app:1", proxy.host());
    let out = super::common::run(
        pack(&cache)
            .args(["pull", &target, "--insecure-registry", &proxy.host()])
            .env("NUA_LOW_SPEED_LIMIT", "1000")
            .env("NUA_LOW_SPEED_TIME", "1"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // The error names the blob, the rate, and the attempts: the trickles after the first
    // one counted, the first one (which brought bytes) did not.
    for part in [
        format!("downloading blob `{}`", layer.digest),
        "below the low-speed limit of 1000 B/s".into(),
        "after 4 retries without progress and 1 resumes after progress".into(),
        "(kept: the next pull resumes from there)".into(),
        "NUA_LOW_SPEED_TIME".into(),
    ] {
        assert!(stderr.contains(&part), "{part:?} missing from:\n{stderr}");
    }
    // The progress display named the stalled blob while it happened.
    let short = &layer.digest.hex()[..12];
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("retrying") && l.contains(short) && l.contains("stalled")),
        "{stderr}"
    );
    assert_store_intact(&cache);
    let kept = std::fs::metadata(cache.join("partial").join(layer.digest.hex()))
        .unwrap()
        .len();
    assert!((150_000..layer.size).contains(&kept), "{kept}");

    // A pull over a sound link asks only for the rest of that blob.
    let sound = FaultProxy::start(&registry.host());
    let target = format!("{}/faults/app:1", sound.host());
    let pulled = pull_json(&sound.host(), &mut pack(&cache), &target, &[]);
    assert_eq!(pulled["digest"], image.manifest.digest.to_string());
    assert_eq!(statuses(&sound, "GET", &path), [206]);
    assert_store_intact(&cache);
    assert!(!cache.join("partial").join(layer.digest.hex()).exists());
}

#[test]
fn stalled_manifests_and_silent_registries_fail_within_the_limit() {
    let (_registry, proxy, work, _image) = served();
    proxy.inject(
        "GET",
        "/manifests/",
        Fault::Trickle {
            after_bytes: 0,
            every_ms: 300,
        },
        100,
    );
    let store = BlobStore::open(work.path().join("cache")).unwrap();
    let reference = Reference::parse(&format!("{}/faults/app:1", proxy.host())).unwrap();
    let client = client_with(&proxy.host(), QUICK_STALL);
    let options = PullOptions::default();
    let err = registry::pull(&client, &reference, &store, &options, &()).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("/manifests/1")
            && message.contains("stalled")
            && message.contains("after 4 retries"),
        "{message}"
    );

    // A server that takes the request and never answers: the wait for headers is bounded.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = silent.local_addr().unwrap().to_string();
    let reference = Reference::parse(&format!("{host}/silent/app:1")).unwrap();
    let client = client_with(&host, QUICK_STALL);
    let err = registry::pull(&client, &reference, &store, &options, &()).unwrap_err();
    assert_eq!(
        err.http_kind(),
        Some(nua_oci::http::HttpKind::Timeout),
        "{err}"
    );
    assert!(err.to_string().contains("after 4 retries"), "{err}");
}

#[test]
fn resumes_that_bring_bytes_never_use_up_the_retries() {
    let (registry, client, work, store) = super::setup();
    let target = format!("{}/flaky/app:1", registry.host());
    let image = push_noise(&client, &store, &target, 50..51, 2_000_000);
    let proxy = FaultProxy::start(&registry.host());
    let layer = &image.layers[0];
    // Every answer breaks after 32 KiB: some 60 resumes for the 2 MB layer.
    let drop = Fault::Reset {
        after_bytes: 32 << 10,
    };
    proxy.inject("GET", &blob_path(layer), drop, 1000);
    let cache = BlobStore::open(work.path().join("cache")).unwrap();
    let reference = Reference::parse(&format!("{}/flaky/app:1", proxy.host())).unwrap();
    let client = fast_client(&proxy.host());
    let options = PullOptions::default();
    let pulled = registry::pull(&client, &reference, &cache, &options, &()).unwrap();
    assert_eq!(pulled.image, image);
    let report = &pulled.blobs[1];
    assert_eq!(report.digest, layer.digest);
    // Each byte came once: every resume asked for the rest.
    assert_eq!(report.transferred, layer.size);
    let answers = statuses(&proxy, "GET", &blob_path(layer));
    assert!(
        answers.len() as u64 >= layer.size / (32 << 10),
        "{answers:?}"
    );
    assert_store_intact(cache.root());
}

#[test]
fn a_blob_corrupted_once_in_transit_is_fetched_again() {
    let (_registry, proxy, work, image) = served();
    let layer = &image.layers[1];
    proxy.inject("GET", &blob_path(layer), Fault::FlipByte { at: 1000 }, 1);
    let store = BlobStore::open(work.path().join("cache")).unwrap();
    let reference = Reference::parse(&format!("{}/faults/app:1", proxy.host())).unwrap();
    let client = fast_client(&proxy.host());
    let pulled = registry::pull(&client, &reference, &store, &PullOptions::default(), &()).unwrap();
    assert_eq!(pulled.image, image);
    assert_eq!(statuses(&proxy, "GET", &blob_path(layer)), [200, 200]);
    assert_store_intact(store.root());
}

#[test]
fn a_corrupt_stored_blob_is_moved_aside_and_fetched_again() {
    let (registry, _proxy, work, image) = served();
    let cache = work.path().join("cache");
    let target = format!("{}/faults/app:1", registry.host());
    pull_json(&registry.host(), &mut pack(&cache), &target, &[]);
    let layer = &image.layers[2];
    let stored = cache.join("blobs/sha256").join(layer.digest.hex());
    let flip = || {
        let mut bytes = std::fs::read(&stored).unwrap();
        bytes[500] ^= 0xff;
        std::fs::write(&stored, bytes).unwrap();
    };

    // Without `-o`: the pull checks what it has, says what it moved, downloads it again.
    flip();
    let out = super::common::run(pack(&cache).args([
        "pull",
        &target,
        "--insecure-registry",
        &registry.host(),
    ]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("does not match its digest") && stderr.contains("corrupt"),
        "{stderr}"
    );
    assert_store_intact(&cache);
    assert!(stored.is_file());

    // With `-o`, the same, and the tarball written is sound.
    flip();
    let tarball = work.path().join("out.tar");
    let out = super::common::run(
        pack(&cache)
            .args([
                "pull",
                &target,
                "--insecure-registry",
                &registry.host(),
                "-o",
            ])
            .arg(&tarball),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_store_intact(&cache);
    let archive = nua_oci::ImageArchive::open(&tarball).unwrap();
    let mut written = Vec::new();
    std::io::Read::read_to_end(&mut archive.open_blob(&layer.digest).unwrap(), &mut written)
        .unwrap();
    assert_eq!(nua_oci::Digest::of(&written), layer.digest);
}

#[test]
fn a_storage_host_that_refuses_a_redirect_is_named_without_its_signature() {
    let (_registry, proxy, work, image) = served();
    let layer = blob_path(&image.layers[0]);
    // Once: asked again, the registry sends a fresh URL and the pull succeeds.
    proxy.inject("GET", &layer, Fault::RedirectToForbiddenStorage, 1);
    let store = BlobStore::open(work.path().join("cache")).unwrap();
    let reference = Reference::parse(&format!("{}/faults/app:1", proxy.host())).unwrap();
    let client = fast_client(&proxy.host());
    let pulled = registry::pull(&client, &reference, &store, &PullOptions::default(), &()).unwrap();
    assert_eq!(pulled.image, image);
    assert_eq!(statuses(&proxy, "GET", "/storage/"), [403]);

    // Twice: the error names the storage URL, not the registry's access rules or the
    // credentials, and never the signature.
    let cache = work.path().join("cache2");
    proxy.inject("GET", &layer, Fault::RedirectToForbiddenStorage, 2);
    let stderr = failed_pull(&cache, &proxy);
    let storage = format!("http://{}/storage/v2/faults/app{layer}`", proxy.host());
    assert!(stderr.contains(&storage), "{stderr}");
    assert!(stderr.contains("403 Forbidden"), "{stderr}");
    assert!(!stderr.contains("denied pull access"), "{stderr}");
    assert!(!stderr.contains("5ecret"), "{stderr}");
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

#[test]
fn a_full_disk_fails_the_pull_at_once_instead_of_retrying_the_network() {
    // A 256 KiB file system for the store: root only (CI runs as root).
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let (_registry, proxy, work, image) = served();
    let small = work.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(mounted.success());
    struct Unmount<'a>(&'a std::path::Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&small);
    let store = BlobStore::open(&small).unwrap();
    let reference = Reference::parse(&format!("{}/faults/app:1", proxy.host())).unwrap();
    let client = fast_client(&proxy.host());
    let options = PullOptions::default();
    let err = registry::pull(&client, &reference, &store, &options, &()).unwrap_err();
    let chain = format!("{err}: {:?}", std::error::Error::source(&err));
    assert!(chain.contains("No space left"), "{chain}");
    assert!(!chain.contains("connection broke"), "{chain}");
    // The store's error ended the pull: no layer was asked for twice.
    for layer in &image.layers {
        assert!(statuses(&proxy, "GET", &blob_path(layer)).len() <= 1);
    }
    assert_store_intact(&small);
}
