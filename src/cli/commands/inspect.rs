//! `nua-pack inspect REF|TARBALL`: manifest, config, layers, labels and platform of an image,
//! read from a tarball or layout when the argument is a path, else from a registry (no layer
//! is downloaded).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use serde::Serialize;

use crate::cli::args::InspectArgs;
use crate::cli::progress::human_bytes;
use crate::cli::settings;
use crate::outln;
use nua_oci::{Descriptor, ImageArchive, ImageConfig, ReadOptions};
use nua_registry::{self as registry, Client, Reference};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Inspection {
    /// The reference or the path inspected.
    image: String,
    digest: String,
    media_type: String,
    platform: String,
    config: Descriptor,
    layers: Vec<Descriptor>,
    /// Sum of the (compressed) layer sizes.
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<String>,
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cmd: Option<Vec<String>>,
    /// Names in a tarball; the platforms of a registry index.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    names: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    index_platforms: Vec<String>,
}

impl Inspection {
    fn new(
        image: String,
        manifest: &Descriptor,
        config_d: &Descriptor,
        layers: &[Descriptor],
        config: &ImageConfig,
    ) -> Inspection {
        let run = config.config.clone().unwrap_or_default();
        let platform = match &config.os {
            os if os.is_empty() => String::new(),
            os => format!("{os}/{}", config.architecture),
        };
        Inspection {
            image,
            digest: manifest.digest.to_string(),
            media_type: manifest.media_type.clone(),
            platform,
            config: config_d.clone(),
            layers: layers.to_vec(),
            size: layers.iter().map(|l| l.size).sum(),
            created: config.created.clone(),
            labels: run.labels,
            entrypoint: run.entrypoint,
            cmd: run.cmd,
            names: Vec::new(),
            index_platforms: Vec::new(),
        }
    }
}

pub fn run(args: &InspectArgs) -> anyhow::Result<ExitCode> {
    let inspection = if Path::new(&args.image).exists() {
        from_archive(Path::new(&args.image))?
    } else {
        from_registry(args)?
    };
    if args.output.json {
        outln!("{}", serde_json::to_string_pretty(&inspection)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("image:      {}", inspection.image)?;
    outln!("digest:     {}", inspection.digest)?;
    outln!("media type: {}", inspection.media_type)?;
    outln!("platform:   {}", inspection.platform)?;
    outln!("config:     {}", inspection.config.digest)?;
    if let Some(created) = &inspection.created {
        outln!("created:    {created}")?;
    }
    outln!(
        "layers:     {} ({})",
        inspection.layers.len(),
        human_bytes(inspection.size)
    )?;
    for layer in &inspection.layers {
        outln!("  {} {:>10}", layer.digest, human_bytes(layer.size))?;
    }
    for (key, value) in &inspection.labels {
        outln!("label:      {key}={value}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn from_archive(path: &Path) -> anyhow::Result<Inspection> {
    let context = || format!("cannot read the image `{}`", path.display());
    let archive = ImageArchive::open(path).with_context(context)?;
    let info = archive
        .image(ReadOptions::default())
        .with_context(context)?;
    let mut inspection = Inspection::new(
        path.display().to_string(),
        &info.manifest_descriptor,
        &info.config_descriptor,
        &info.layers,
        &info.config,
    );
    inspection.names = info.names;
    Ok(inspection)
}

fn from_registry(args: &InspectArgs) -> anyhow::Result<Inspection> {
    let reference = Reference::parse(&args.image)
        .with_context(|| format!("`{}` is neither a file nor an image reference", args.image))?;
    let platform = registry::parse_platform(&args.platform)?;
    let client = Client::new(settings::registry_options(
        &args.registry,
        Some(&reference.registry),
    )?)?;
    let inspected = registry::inspect(&client, &reference, &platform)
        .with_context(|| format!("cannot inspect `{reference}`"))?;
    let resolved = &inspected.resolved;
    let mut inspection = Inspection::new(
        reference.to_string(),
        &resolved.descriptor,
        &resolved.manifest.config,
        &resolved.manifest.layers,
        &inspected.config,
    );
    inspection.index_platforms = resolved.index_platforms.clone();
    Ok(inspection)
}
