//! `nua-pack cache ls|prune|verify`: what the cache folder holds, removing what builds no
//! longer use, and checking every blob against its digest.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use crate::cli::args::{CacheCommand, CacheLsArgs, CachePruneArgs, CacheVerifyArgs};
use crate::cli::progress::{human_age, human_bytes};
use crate::cli::settings;
use crate::outln;
use nua_build::prune;
use nua_oci::{BlobState, BlobStore, Digest, Quarantined};

pub fn run(cmd: &CacheCommand) -> anyhow::Result<ExitCode> {
    let cache_dir = settings::cache_dir()?;
    match cmd {
        CacheCommand::Ls(args) => ls(&cache_dir, args),
        CacheCommand::Prune(args) => prune(&cache_dir, args),
        CacheCommand::Verify(args) => verify(&cache_dir, args),
    }
}

fn ls(cache_dir: &Path, args: &CacheLsArgs) -> anyhow::Result<ExitCode> {
    let usage = prune::usage(cache_dir)?;
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
    Ok(ExitCode::SUCCESS)
}

fn prune(cache_dir: &Path, args: &CachePruneArgs) -> anyhow::Result<ExitCode> {
    let keep = Duration::from_secs(args.keep_days.saturating_mul(24 * 60 * 60));
    let pruned = prune::prune(cache_dir, keep)?;
    // Blobs moved aside as corrupt are only kept for forensics: a prune deletes them all.
    let corrupt = BlobStore::open(cache_dir)?.empty_quarantine()?;
    let corrupt_bytes: u64 = corrupt.iter().map(|q| q.size).sum();
    if args.output.json {
        let mut json = serde_json::to_value(&pruned)?;
        json["corrupt_files"] = corrupt.len().into();
        json["corrupt_bytes"] = corrupt_bytes.into();
        outln!("{}", serde_json::to_string(&json)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "removed {} layer entries, {} blobs ({}), {} unpacked layers, {} tools ({}) and {} other \
         files not used in {} days",
        pruned.layer_entries,
        pruned.blobs,
        human_bytes(pruned.blob_bytes),
        pruned.unpacked_layers,
        pruned.tools,
        human_bytes(pruned.tool_bytes),
        pruned.other_files,
        args.keep_days
    )?;
    if !corrupt.is_empty() {
        outln!(
            "removed {} blobs moved aside as corrupt ({})",
            corrupt.len(),
            human_bytes(corrupt_bytes)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What `cache verify --json` prints.
#[derive(Serialize)]
struct Verified {
    cache_dir: PathBuf,
    checked: u64,
    bytes: u64,
    /// The blobs found corrupt by this run, each moved aside.
    corrupt: Vec<MovedAside>,
    /// Everything in `corrupt/` now, this run's included.
    quarantined: Vec<QuarantinedFile>,
}

#[derive(Serialize)]
struct MovedAside {
    digest: Digest,
    moved_to: PathBuf,
}

#[derive(Serialize)]
struct QuarantinedFile {
    path: PathBuf,
    size: u64,
}

fn verify(cache_dir: &Path, args: &CacheVerifyArgs) -> anyhow::Result<ExitCode> {
    let store = BlobStore::open(cache_dir)?;
    let mut result = Verified {
        cache_dir: cache_dir.to_path_buf(),
        checked: 0,
        bytes: 0,
        corrupt: Vec::new(),
        quarantined: Vec::new(),
    };
    for digest in store.digests()? {
        match store.verify(&digest)? {
            // Removed since it was listed (a prune running alongside): nothing to check.
            BlobState::Missing => continue,
            BlobState::Intact { size } => result.bytes += size,
            BlobState::Corrupt { moved_to } => {
                if !args.output.json {
                    outln!("corrupt: {digest}, moved aside to `{}`", moved_to.display())?;
                }
                result.corrupt.push(MovedAside { digest, moved_to });
            }
        }
        result.checked += 1;
    }
    result.quarantined = store
        .quarantined()?
        .into_iter()
        .map(|Quarantined { path, size }| QuarantinedFile { path, size })
        .collect();
    if args.output.json {
        outln!("{}", serde_json::to_string(&result)?)?;
    } else {
        print_summary(&result, &store)?;
    }
    Ok(match result.corrupt.is_empty() {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    })
}

fn print_summary(result: &Verified, store: &BlobStore) -> anyhow::Result<()> {
    outln!(
        "{} blobs checked ({}), {} corrupt",
        result.checked,
        human_bytes(result.bytes),
        result.corrupt.len()
    )?;
    if !result.corrupt.is_empty() {
        outln!("the next pull or build fetches the corrupt blobs again")?;
    }
    if !result.quarantined.is_empty() {
        let bytes: u64 = result.quarantined.iter().map(|q| q.size).sum();
        outln!(
            "{} blobs moved aside as corrupt ({}) are kept in `{}`; `nua-pack cache prune` \
             deletes them",
            result.quarantined.len(),
            human_bytes(bytes),
            store.corrupt_dir().display()
        )?;
    }
    Ok(())
}
