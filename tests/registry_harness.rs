//! Self-tests of the registry test harness (`tests/common/{registry,token,proxy}.rs`), with
//! skopeo as the client: the three registry set-ups accept the right credentials and refuse
//! the wrong ones, and the fault proxy does to the bytes what it is told. The images are tiny
//! ones made with the `oci` module.

mod common;
#[path = "registry_harness/scripted.rs"]
mod scripted;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::http::Head;
use common::noise;
use common::proxy::{Fault, FaultProxy};
use common::registry::{Auth, Registry};
use common::token::Presented;
use nua_oci::{
    write_image, write_layout_dir, BlobStore, ContainerConfig, ImageName, ImageRef, ImageSpec,
    LayerOptions, LayerWriter, Meta,
};
use sha2::Digest as _;

/// A one-layer image whose layer holds `size` incompressible bytes, as an OCI layout `dir`
/// tagged `1` (so `oci:DIR:1` names it).
fn tiny_image(dir: &Path, size: usize) -> ImageRef {
    let store = BlobStore::open(dir.join("cache")).unwrap();
    let opts = LayerOptions {
        source_date_epoch: 1_700_000_000,
        ..LayerOptions::default()
    };
    let mut layer = LayerWriter::new(&store, opts).unwrap();
    layer
        .add_bytes("data.bin", &Meta::new(0o644), &noise(1, size))
        .unwrap();
    let layer = layer.finish().unwrap();
    let spec = ImageSpec::new(vec![layer], ContainerConfig::default(), 1_700_000_000);
    let image = write_image(&store, &spec).unwrap();
    let names = [ImageName::parse("nua-harness:1").unwrap()];
    write_layout_dir(&store, &image, &names, &dir.join("layout")).unwrap();
    image
}

/// skopeo with no policy file, no stored credentials and the registry treated as plain HTTP.
fn skopeo(dir: &Path, args: &[&str]) -> Output {
    Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .env("REGISTRY_AUTH_FILE", dir.join("no-auth.json"))
        .output()
        .expect("run skopeo")
}

fn push(dir: &Path, host: &str, creds: Option<&str>) -> Output {
    let layout = format!("oci:{}:1", dir.join("layout").display());
    let dest = format!("docker://{host}/nua/harness:1");
    let mut args = vec!["copy", "--dest-tls-verify=false", &layout, &dest];
    if let Some(creds) = creds {
        args.extend(["--dest-creds", creds]);
    }
    skopeo(dir, &args)
}

/// Pull `nua/harness:1` into the OCI layout `dir/NAME`.
fn pull(dir: &Path, host: &str, name: &str, extra: &[&str]) -> Output {
    let src = format!("docker://{host}/nua/harness:1");
    let dest = format!("oci:{}:1", dir.join(name).display());
    let mut args = vec!["copy", "--src-tls-verify=false"];
    args.extend(extra);
    args.extend([src.as_str(), dest.as_str()]);
    skopeo(dir, &args)
}

#[track_caller]
fn assert_ok(out: &Output, registry: &Registry) {
    assert!(
        out.status.success(),
        "skopeo failed ({}): {}\nregistry log: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        registry.log_path().display()
    );
}

#[track_caller]
fn assert_refused(out: &Output, words: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        !out.status.success(),
        "skopeo succeeded, expected a refusal"
    );
    assert!(
        words.iter().any(|w| stderr.contains(w)),
        "expected one of {words:?} in: {stderr}"
    );
}

/// The registry serves the manifest the project wrote, byte for byte.
#[track_caller]
fn assert_manifest(dir: &Path, host: &str, creds: Option<&str>, image: &ImageRef) {
    let src = format!("docker://{host}/nua/harness:1");
    let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
    if let Some(creds) = creds {
        args.extend(["--creds", creds]);
    }
    args.push(&src);
    let out = skopeo(dir, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&out.stdout)));
    assert_eq!(digest, image.manifest.digest.to_string());
}

#[test]
fn push_without_auth() {
    let tmp = common::temp_dir();
    let image = tiny_image(tmp.path(), 4096);
    let registry = Registry::start(Auth::None);
    assert_ok(&push(tmp.path(), &registry.host(), None), &registry);
    assert_manifest(tmp.path(), &registry.host(), None, &image);
}

#[test]
fn basic_auth_takes_the_right_password_only() {
    let tmp = common::temp_dir();
    let image = tiny_image(tmp.path(), 4096);
    let registry = Registry::start(Auth::basic("nua", "s3cret"));
    let host = registry.host();
    assert_refused(&push(tmp.path(), &host, None), &["unauthorized", "401"]);
    assert_refused(
        &push(tmp.path(), &host, Some("nua:wrong")),
        &["unauthorized", "401"],
    );
    assert_ok(&push(tmp.path(), &host, Some("nua:s3cret")), &registry);
    assert_manifest(tmp.path(), &host, Some("nua:s3cret"), &image);
}

#[test]
fn token_auth_grants_push_to_the_user_only() {
    let tmp = common::temp_dir();
    let image = tiny_image(tmp.path(), 4096);
    let registry = Registry::start(Auth::token("nua", "s3cret"));
    let host = registry.host();

    assert_refused(
        &push(tmp.path(), &host, None),
        &["unauthorized", "denied", "401"],
    );
    let anonymous = registry.token_requests();
    assert!(
        anonymous
            .iter()
            .any(|r| r.credentials == Presented::Anonymous && r.status == 200),
        "an anonymous client gets a token granting nothing: {anonymous:?}"
    );

    assert_refused(
        &push(tmp.path(), &host, Some("nua:wrong")),
        &["unauthorized", "401"],
    );
    assert!(registry
        .token_requests()
        .iter()
        .any(|r| r.credentials == Presented::Invalid && r.status == 401));

    assert_ok(&push(tmp.path(), &host, Some("nua:s3cret")), &registry);
    assert!(
        registry.token_requests().iter().any(|r| {
            r.credentials == Presented::Valid
                && r.scopes
                    .iter()
                    .any(|s| s.starts_with("repository:nua/harness:") && s.contains("push"))
        }),
        "{:?}",
        registry.token_requests()
    );
    assert_manifest(tmp.path(), &host, Some("nua:s3cret"), &image);
}

/// Uploads go through the proxy too (its `Location` rewriting keeps them there); a 503 on a
/// blob is seen and skopeo retries it or reports it; a 429 it retries.
#[test]
fn proxy_passes_pushes_and_serves_a_503() {
    let tmp = common::temp_dir();
    let image = tiny_image(tmp.path(), 200_000);
    let registry = Registry::start(Auth::None);
    let proxy = FaultProxy::start(&registry.host());
    assert_ok(&push(tmp.path(), &proxy.host(), None), &registry);
    let seen = proxy.requests();
    for method in ["POST", "PUT"] {
        assert!(
            seen.iter()
                .any(|(m, p, _)| m == method && p.contains("/blobs/uploads/")),
            "no {method} of an upload went through the proxy: {seen:?}"
        );
    }
    assert_manifest(tmp.path(), &registry.host(), None, &image);

    let layer = format!("/blobs/{}", image.layers[0].digest);
    proxy.inject("GET", &layer, Fault::Status(503), 1);
    let out = pull(tmp.path(), &proxy.host(), "pulled", &["--retry-times", "3"]);
    let gets = layer_gets(&proxy, &layer);
    assert_eq!(gets.first(), Some(&503), "{:?}", proxy.requests());
    if out.status.success() {
        assert_eq!(gets.get(1), Some(&200), "skopeo retried the blob");
        assert_pulled_layer(&tmp.path().join("pulled"), &image);
    } else {
        // skopeo 1.9 (Debian bookworm) does not retry a 5xx on a blob.
        assert_refused(&out, &["503", "unavailable"]);
    }

    // A 429 it retries, after the `Retry-After` delay.
    proxy.inject(
        "GET",
        &layer,
        Fault::TooMany {
            retry_after_secs: 1,
        },
        1,
    );
    let out = pull(
        tmp.path(),
        &proxy.host(),
        "pulled-429",
        &["--retry-times", "3"],
    );
    assert_ok(&out, &registry);
    assert!(layer_gets(&proxy, &layer).ends_with(&[429, 200]));
    assert_pulled_layer(&tmp.path().join("pulled-429"), &image);
}

/// Statuses of the GETs of `layer` the proxy saw, in order.
fn layer_gets(proxy: &FaultProxy, layer: &str) -> Vec<u16> {
    proxy
        .requests()
        .into_iter()
        .filter(|(m, p, _)| m == "GET" && p.contains(layer))
        .map(|(_, _, s)| s)
        .collect()
}

#[track_caller]
fn assert_pulled_layer(layout: &Path, image: &ImageRef) {
    let layer = &image.layers[0];
    let blob = layout.join("blobs/sha256").join(layer.digest.hex());
    let bytes = std::fs::read(blob).unwrap();
    assert_eq!(bytes.len() as u64, layer.size);
    assert_eq!(
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes))),
        layer.digest.to_string()
    );
}

#[test]
fn proxy_flipped_byte_fails_the_digest_check() {
    let tmp = common::temp_dir();
    let image = tiny_image(tmp.path(), 200_000);
    let registry = Registry::start(Auth::None);
    assert_ok(&push(tmp.path(), &registry.host(), None), &registry);
    let proxy = FaultProxy::start(&registry.host());
    let layer = image.layers[0].digest.to_string();
    proxy.inject("GET", &layer, Fault::FlipByte { at: 1000 }, 10);
    let out = pull(tmp.path(), &proxy.host(), "pulled", &[]);
    assert_refused(&out, &["digest"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains(&layer));
}
