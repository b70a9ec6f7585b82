//! A chain of layers being stacked, base and app steps alike, and what running a step in
//! the sandbox needs: its options, the sandbox (made once, when a step first has to run)
//! and the last lines of its output.

use std::path::PathBuf;

use crate::{Event, Reporter};
use nua_oci as oci;
use nua_oci::BlobStore;
use nua_sandbox::{self as sandbox, Sandbox};

/// A layer made (or taken from the cache) by a step.
#[derive(Debug, Clone)]
pub struct LayerSummary {
    /// The step's label (`source`, `python: configure`, …).
    pub step: String,
    pub layer: oci::Layer,
    /// Taken from the cache rather than made.
    pub cached: bool,
}

/// Shown as `{step, digest, diff_id, size, cached}` (the `--json` output of builds).
impl serde::Serialize for LayerSummary {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Shown<'a> {
            step: &'a str,
            digest: String,
            diff_id: String,
            size: u64,
            cached: bool,
        }
        Shown {
            step: &self.step,
            digest: self.layer.descriptor.digest.to_string(),
            diff_id: self.layer.diff_id.to_string(),
            size: self.layer.descriptor.size,
            cached: self.cached,
        }
        .serialize(serializer)
    }
}

/// How to build the layers of a base (and of an app's steps): where the cache is, and the
/// layers' options.
#[derive(Debug, Clone)]
pub struct BaseOptions {
    /// The cache folder: blob store, layer cache, sandbox roots.
    pub cache_dir: PathBuf,
    pub layer: oci::LayerOptions,
    /// How to reach registries (bases that start from an image).
    pub registry: nua_registry::ClientOptions,
    /// Caches in registries (`--cache-from`, `--cache-to`).
    pub remote: super::Remote,
}

/// Layers being stacked: what is there so far, the cache key of the top one, and the
/// sandbox once a step had to run (a fully cached chain needs none).
pub struct Chain {
    /// Bottom first.
    pub layers: Vec<LayerSummary>,
    pub key: String,
    pub sandbox: Option<Sandbox>,
}

impl Chain {
    /// The sandbox (see [`sandbox_for`]).
    pub fn sandbox(
        &mut self,
        options: &BaseOptions,
        store: &BlobStore,
        reporter: &mut dyn Reporter,
    ) -> Result<&Sandbox, sandbox::Error> {
        sandbox_for(&mut self.sandbox, options, store, reporter)
    }

    /// The layers alone.
    pub fn only_layers(&self) -> Vec<oci::Layer> {
        only_layers(&self.layers)
    }
}

/// The layers of `summaries`, in order.
pub fn only_layers(summaries: &[LayerSummary]) -> Vec<oci::Layer> {
    summaries.iter().map(|s| s.layer.clone()).collect()
}

/// The sandbox, made the first time a step has to run (a fully cached base needs none);
/// what it has to say (a fallback id mapping) is said then.
pub fn sandbox_for<'s>(
    slot: &'s mut Option<Sandbox>,
    options: &BaseOptions,
    store: &BlobStore,
    reporter: &mut dyn Reporter,
) -> Result<&'s Sandbox, sandbox::Error> {
    if slot.is_none() {
        let sandbox = Sandbox::new(&options.cache_dir.join("sandbox"), store)?;
        for message in sandbox.warnings() {
            reporter.event(Event::Warning { message });
        }
        *slot = Some(sandbox);
    }
    Ok(slot.as_ref().expect("just set"))
}

/// The last lines a step printed, for the error when it fails.
#[derive(Default)]
pub struct Tail(std::collections::VecDeque<String>);

impl Tail {
    const LINES: usize = 20;

    pub fn push(&mut self, line: &str) {
        if self.0.len() == Self::LINES {
            self.0.pop_front();
        }
        self.0.push_back(line.to_owned());
    }

    pub fn text(&self) -> String {
        let lines: Vec<&str> = self.0.iter().map(|l| l.as_str()).collect();
        format!("  {}", lines.join("\n  "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_summary_shows_as_the_json_builds_print() {
        let layer = oci::Layer {
            descriptor: oci::Descriptor::new(
                oci::image::media_type::LAYER_GZIP,
                format!("sha256:{}", "a".repeat(64)).parse().unwrap(),
                42,
            ),
            diff_id: format!("sha256:{}", "b".repeat(64)).parse().unwrap(),
        };
        let summary = LayerSummary {
            step: "source".into(),
            layer,
            cached: true,
        };
        assert_eq!(
            serde_json::to_string(&summary).unwrap(),
            format!(
                r#"{{"step":"source","digest":"sha256:{}","diff_id":"sha256:{}","size":42,"cached":true}}"#,
                "a".repeat(64),
                "b".repeat(64)
            )
        );
    }
}
