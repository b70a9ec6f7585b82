//! `nua-pack cache ls|prune`: what the cache folder holds, and removing what builds no
//! longer use.

use std::process::ExitCode;
use std::time::Duration;

use crate::cli::args::CacheCommand;
use crate::cli::progress::{human_age, human_bytes};
use crate::cli::settings;
use crate::outln;
use nua_build::prune;

pub fn run(cmd: &CacheCommand) -> anyhow::Result<ExitCode> {
    let cache_dir = settings::cache_dir()?;
    match cmd {
        CacheCommand::Ls(args) => {
            let usage = prune::usage(&cache_dir)?;
            if args.output.json {
                outln!("{}", serde_json::to_string(&usage)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            outln!("{:<12} {:>10} {:>12}  STEP", "LAYER", "SIZE", "LAST USED")?;
            for layer in &usage.layers {
                let digest = layer.digest.trim_start_matches("sha256:");
                let ago = human_age(layer.unused_for);
                outln!(
                    "{:<12} {:>10} {:>12}  {}",
                    &digest[..digest.len().min(12)],
                    human_bytes(layer.size),
                    format!("{ago} ago"),
                    layer.step
                )?;
            }
            outln!(
                "{} layers; {} blobs ({}) in {}; {} layers unpacked for the sandbox",
                usage.layers.len(),
                usage.blobs,
                human_bytes(usage.blob_bytes),
                usage.cache_dir.display(),
                usage.unpacked_layers
            )?;
        }
        CacheCommand::Prune(args) => {
            let keep = Duration::from_secs(args.keep_days.saturating_mul(24 * 60 * 60));
            let pruned = prune::prune(&cache_dir, keep)?;
            if args.output.json {
                outln!("{}", serde_json::to_string(&pruned)?)?;
            } else {
                outln!(
                    "removed {} layer entries, {} blobs ({}), {} unpacked layers and {} other \
                     files not used in {} days",
                    pruned.layer_entries,
                    pruned.blobs,
                    human_bytes(pruned.blob_bytes),
                    pruned.unpacked_layers,
                    pruned.other_files,
                    args.keep_days
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
