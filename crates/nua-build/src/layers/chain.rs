//! A chain of layers being stacked, base and app steps alike, and what running a step in
//! the sandbox needs: its options, the sandbox (made once, when a step first has to run)
//! and the last lines of its output.

use std::path::PathBuf;

use crate::{Event, Reporter};
use nua_oci as oci;
use nua_oci::BlobStore;
use nua_sandbox::{self as sandbox, Sandbox};

/// How to build the layers of a base (and of an app's steps): where the cache is, and the
/// layers' options.
#[derive(Debug, Clone)]
pub struct BaseOptions {
    /// The cache folder: blob store, layer cache, sandbox roots.
    pub cache_dir: PathBuf,
    pub layer: oci::LayerOptions,
}

/// Layers being stacked: what is there so far, the cache key of the top one, and the
/// sandbox once a step had to run (a fully cached chain needs none).
pub struct Chain {
    /// (step, layer, taken from the cache), bottom first.
    pub layers: Vec<(String, oci::Layer, bool)>,
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

fn only_layers(layers: &[(String, oci::Layer, bool)]) -> Vec<oci::Layer> {
    layers.iter().map(|(_, l, _)| l.clone()).collect()
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
