//! `nua-pack pull REF [--output TARBALL | --oci-dir DIR]`: a registry image into the cache.

use std::process::ExitCode;

use anyhow::Context as _;
use serde::Serialize;

use crate::cli::args::PullArgs;
use crate::cli::progress::human_bytes;
use crate::cli::settings;
use crate::cli::transfer::Transfers;
use crate::outln;
use nua_oci::{self as oci, BlobStore};
use nua_registry::{self as registry, BlobReport, Client, Outcome, PullOptions, Reference};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PullReport<'a> {
    reference: String,
    digest: &'a oci::Digest,
    media_type: &'a str,
    platform: String,
    downloaded: u64,
    blobs: &'a [BlobReport],
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
}

pub fn run(args: &PullArgs) -> anyhow::Result<ExitCode> {
    let reference = Reference::parse(&args.reference)?;
    let options = PullOptions {
        platform: registry::parse_platform(&args.platform)?,
        ..PullOptions::default()
    };
    let client = Client::new(settings::registry_options(
        &args.registry,
        Some(&reference.registry),
    )?)?;
    let store = BlobStore::open(settings::cache_dir()?)?;
    let progress = Transfers::new(args.report.quiet || args.report.json);
    let pulled = registry::pull(&client, &reference, &store, &options, &progress)
        .with_context(|| format!("cannot pull `{reference}`"));
    progress.done();
    let pulled = pulled?;
    let names: Vec<oci::ImageName> = reference.image_name().into_iter().collect();
    let output = match (&args.output, &args.oci_dir) {
        (Some(path), _) => {
            oci::write_tarball(&store, &pulled.image, &names, path)?;
            Some(path)
        }
        (None, Some(dir)) => {
            oci::write_layout_dir(&store, &pulled.image, &names, dir)?;
            Some(dir)
        }
        (None, None) => None,
    };
    let report = PullReport {
        reference: reference.to_string(),
        digest: &pulled.image.manifest.digest,
        media_type: &pulled.image.manifest.media_type,
        platform: registry::platform_string(&pulled.image.platform),
        downloaded: pulled.blobs.iter().map(|b| b.transferred).sum(),
        blobs: &pulled.blobs,
        output: output.map(|p| p.display().to_string()),
    };
    if args.report.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else if !args.report.quiet {
        let fetched = pulled
            .blobs
            .iter()
            .filter(|b| b.outcome == Outcome::Downloaded)
            .count();
        outln!(
            "pulled {}@{} ({} blobs, {fetched} downloaded, {})",
            report.reference,
            report.digest,
            pulled.blobs.len(),
            human_bytes(report.downloaded)
        )?;
        if let Some(output) = &report.output {
            outln!("wrote {output}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Pull `reference` (the Docker Hub mirror and credentials apply, as for `pull`) into the
/// cache and write it as an OCI layout folder at `dir`, named as the reference names it: the
/// image of a provider `nua deploy` runs from its module's link.
pub fn pull_layout(reference: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let reference = Reference::parse(reference)?;
    let client = Client::new(settings::registry_options(
        &crate::cli::args::RegistryArgs::default(),
        Some(&reference.registry),
    )?)?;
    let store = BlobStore::open(settings::cache_dir()?)?;
    let pulled = registry::pull(&client, &reference, &store, &PullOptions::default(), &())
        .with_context(|| format!("cannot pull `{reference}`"))?;
    let names: Vec<oci::ImageName> = reference.image_name().into_iter().collect();
    oci::write_layout_dir(&store, &pulled.image, &names, dir)?;
    Ok(())
}
