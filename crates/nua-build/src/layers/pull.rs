//! A registry image pulled into the store as the bottom of a [`Chain`](super::Chain): the
//! `base-image` of a wrap build, a builder given as an image reference, a base definition's
//! `image`. Nothing is downloaded twice: blobs the store holds are verified, not fetched.

use super::LayerSummary;
use crate::{Event, Reporter};
use nua_oci::{self as oci, image::media_type, BlobStore, ImageConfig};
use nua_registry::{self as registry, Reference};

/// A pulled image: its layers as steps, its config, the manifest digest that names it.
pub struct PulledImage {
    /// Bottom first, named `<reference> layer <n>`.
    pub layers: Vec<LayerSummary>,
    pub config: ImageConfig,
    /// The manifest's digest: the exact image, whatever its tag points at later.
    pub digest: oci::Digest,
}

/// Pull `reference` into `store` as a step of the build (`pull <reference>`), saying how much
/// came over the network.
pub fn pull_image(
    reference: &Reference,
    store: &BlobStore,
    client: &registry::ClientOptions,
    reporter: &mut dyn Reporter,
) -> Result<PulledImage, registry::Error> {
    let step = format!("pull {reference}");
    reporter.event(Event::StepStarted { step: &step });
    let started = std::time::Instant::now();
    let client = registry::Client::new(client.clone())?;
    let pulled = registry::pull(
        &client,
        reference,
        store,
        &registry::PullOptions::default(),
        reporter.transfers(),
    )?;
    let fetched: u64 = pulled.blobs.iter().map(|b| b.transferred).sum();
    let line = format!(
        "{} ({} layers, {:.1} MB downloaded)",
        pulled.image.manifest.digest,
        pulled.image.layers.len(),
        fetched as f64 / 1e6
    );
    reporter.event(Event::Output { line: &line });
    reporter.event(Event::StepFinished {
        step: &step,
        cached: fetched == 0,
        elapsed: started.elapsed(),
    });

    let diff_ids = &pulled.config.rootfs.diff_ids;
    let layers = pulled
        .image
        .layers
        .iter()
        .zip(diff_ids)
        .enumerate()
        .map(|(i, (descriptor, diff_id))| {
            let mut descriptor = descriptor.clone();
            // The same bytes under the OCI name, so the manifest is all OCI.
            if descriptor.media_type == media_type::DOCKER_LAYER_GZIP {
                descriptor.media_type = media_type::LAYER_GZIP.to_owned();
            }
            let layer = oci::Layer {
                descriptor,
                diff_id: diff_id.clone(),
            };
            LayerSummary {
                step: format!("{reference} layer {}", i + 1),
                layer,
                cached: true,
            }
        })
        .collect();
    Ok(PulledImage {
        layers,
        config: pulled.config,
        digest: pulled.image.manifest.digest,
    })
}
