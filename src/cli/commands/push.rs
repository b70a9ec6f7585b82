//! `nua-pack push TARBALL REF`: an image tarball or layout to a registry.

use std::process::ExitCode;

use anyhow::Context as _;
use serde::Serialize;

use crate::cli::args::PushArgs;
use crate::cli::progress::human_bytes;
use crate::cli::settings;
use crate::cli::transfer::Transfers;
use crate::outln;
use nua_oci::{self as oci, BlobStore};
use nua_registry::{self as registry, BlobReport, Client, Outcome, PushOptions, Reference};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PushReport<'a> {
    reference: String,
    digest: &'a oci::Digest,
    /// Bytes of blobs sent.
    uploaded: u64,
    blobs: &'a [BlobReport],
}

pub fn run(args: &PushArgs) -> anyhow::Result<ExitCode> {
    let reference = Reference::parse(&args.reference)?;
    let client = Client::new(settings::registry_options(
        &args.registry,
        Some(&reference.registry),
    )?)?;
    let store = BlobStore::open(settings::cache_dir()?)?;
    let image = registry::import_archive(&store, &args.tarball)
        .with_context(|| format!("cannot read the image `{}`", args.tarball.display()))?;
    let progress = Transfers::new(args.report.quiet || args.report.json);
    let pushed = registry::push(
        &client,
        &store,
        &image,
        &reference,
        &PushOptions::default(),
        &progress,
    )
    .with_context(|| format!("cannot push to `{reference}`"));
    progress.done();
    let pushed = pushed?;
    let report = PushReport {
        reference: reference.to_string(),
        digest: &pushed.digest,
        uploaded: pushed.uploaded(),
        blobs: &pushed.blobs,
    };
    if args.report.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else if !args.report.quiet {
        let count = |o| pushed.blobs.iter().filter(|b| b.outcome == o).count();
        outln!(
            "pushed {}@{} ({} uploaded in {} blobs, {} already there, {} mounted)",
            report.reference,
            report.digest,
            human_bytes(report.uploaded),
            count(Outcome::Uploaded),
            count(Outcome::Present),
            count(Outcome::Mounted)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
