//! The build cache artifact (`nua_registry::cache`) against the real registry: what goes up
//! comes back, skopeo reads it as a standard OCI artifact, a second push sends nothing, and a
//! layer tampered with in the registry's storage is refused.

use super::*;
use nua_registry::cache::{self, Entry};

/// Two entries (two layers of noise) in `store`.
fn entries(store: &BlobStore) -> Vec<Entry> {
    let image = image(store, &[("a", noise(1, 300_000)), ("b", noise(2, 200_000))]);
    let config: oci::ImageConfig =
        serde_json::from_slice(&store.read(&image.config.digest).unwrap()).unwrap();
    image
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .enumerate()
        .map(|(i, (descriptor, diff_id))| Entry {
            key: format!("key-{i}"),
            step: format!("step {i}"),
            layer: oci::Layer {
                descriptor: descriptor.clone(),
                diff_id: diff_id.clone(),
            },
        })
        .collect()
}

#[test]
fn a_build_cache_goes_up_and_comes_back_and_a_tampered_layer_is_refused() {
    let (registry, client, work, store) = setup();
    let host = registry.host();
    let reference = Reference::parse(&format!("{host}/cache/app:buildcache")).unwrap();
    let sent = entries(&store);
    let digest = cache::push_cache(
        &client,
        &store,
        &reference,
        &sent,
        &PushOptions::default(),
        &(),
    )
    .unwrap();

    // A standard OCI artifact: skopeo reads its manifest as it is.
    let raw = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{host}/cache/app:buildcache"),
    ]));
    let manifest: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(manifest["artifactType"], cache::ARTIFACT_TYPE);
    assert_eq!(manifest["config"]["mediaType"], cache::CONFIG_TYPE);
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 2);
    assert_eq!(oci::Digest::of(raw.trim_end().as_bytes()), digest);

    // Read back by a builder with an empty store.
    let fetched = cache::fetch_cache(&client, &reference).unwrap();
    assert_eq!(fetched, sent);
    let empty = BlobStore::open(work.path().join("empty")).unwrap();
    let report = cache::fetch_layer(&client, &reference, &fetched[0], &empty, &()).unwrap();
    assert_eq!(report.outcome, Outcome::Downloaded);
    assert_eq!(
        empty.read(&fetched[0].layer.descriptor.digest).unwrap(),
        store.read(&fetched[0].layer.descriptor.digest).unwrap()
    );

    // Pushed again: the same manifest, and no blob is sent twice.
    let again = cache::push_cache(
        &client,
        &store,
        &reference,
        &sent,
        &PushOptions::default(),
        &(),
    )
    .unwrap();
    assert_eq!(again, digest);

    // A layer changed in the registry's storage is not taken.
    let hex = fetched[1].layer.descriptor.digest.hex().to_owned();
    let data = registry
        .storage()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(&hex)
        .join("data");
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();
    let err = cache::fetch_layer(&client, &reference, &fetched[1], &empty, &()).unwrap_err();
    assert!(
        err.to_string()
            .contains(&fetched[1].layer.descriptor.digest.to_string()),
        "{err}"
    );
    assert!(!empty.contains(&fetched[1].layer.descriptor.digest));
    assert_store_intact(&work.path().join("empty"));

    // An image is not a cache: one clear error.
    let pushed = image(&store, &[("c", noise(3, 1000))]);
    let plain = Reference::parse(&format!("{host}/cache/app:image")).unwrap();
    registry::push(
        &client,
        &store,
        &pushed,
        &plain,
        &PushOptions::default(),
        &(),
    )
    .unwrap();
    let err = cache::fetch_cache(&client, &plain).unwrap_err().to_string();
    assert!(err.contains("it is not a Nua build cache"), "{err}");
}
