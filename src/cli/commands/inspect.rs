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
use crate::cli::Hint;
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
    let inspection = match local_path(&args.image)? {
        Some(path) => from_archive(path)?,
        None => from_registry(args)?,
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

/// The file or folder `image` names, or `None` when it is a registry reference: anything
/// there (a symlink too, even a dangling one or a loop) or starting with `.` or `/` is a path,
/// as `nua run` tells them (issue 13: a symlink loop was reported as a bad reference).
fn local_path(image: &str) -> anyhow::Result<Option<&Path>> {
    let path = Path::new(image);
    // `ErrorKind::FilesystemLoop` is not stable yet; 40 is Linux's `ELOOP`.
    const ELOOP: i32 = 40;
    let is_loop = |e: &std::io::Error| e.raw_os_error() == Some(ELOOP);
    let hint = || Hint("give the path of an image tarball or OCI layout folder".into());
    let err = match path.symlink_metadata() {
        Ok(md) if !md.file_type().is_symlink() => return Ok(Some(path)),
        // Where it leads: `stat` follows every link.
        Ok(_) => match path.metadata() {
            Ok(_) => return Ok(Some(path)),
            Err(e) if is_loop(&e) => anyhow::anyhow!("`{image}` is a symlink loop"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let target = fs_err::read_link(path)?;
                let target = target.display();
                anyhow::anyhow!("`{image}` is a symlink to `{target}`, which does not exist")
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read `{image}`")),
        },
        Err(e) if is_loop(&e) => anyhow::anyhow!("`{image}` goes through a symlink loop"),
        Err(_) if image.starts_with(['.', '/']) => anyhow::anyhow!("`{image}` does not exist"),
        Err(_) => return Ok(None),
    };
    Err(err.context(hint()))
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// The error of `local_path` as `finish` shows it: the chain, then the hint.
    fn refused(image: &Path) -> String {
        let err = local_path(image.to_str().unwrap()).unwrap_err();
        format!(
            "{err:#} / {}",
            crate::cli::hint_of(&err).unwrap_or_default()
        )
    }

    #[test]
    fn paths_symlinks_and_references() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("image.tar");
        std::fs::write(&file, b"x").unwrap();
        let (good, dangling, looped) = (
            dir.path().join("good"),
            dir.path().join("dangling"),
            dir.path().join("loop"),
        );
        symlink(&file, &good).unwrap();
        symlink(dir.path().join("gone.tar"), &dangling).unwrap();
        symlink(&looped, &looped).unwrap();
        let classified = |p: &Path| local_path(p.to_str().unwrap()).unwrap().map(Path::to_owned);
        assert_eq!(classified(&file), Some(file.clone()));
        assert_eq!(classified(&good), Some(good.clone()));
        assert_eq!(local_path("debian:bookworm").unwrap(), None);
        assert_eq!(local_path("ghcr.io/org/app:1").unwrap(), None);

        let err = refused(&looped);
        assert!(
            err.contains(&format!("`{}` is a symlink loop", looped.display())),
            "{err}"
        );
        assert!(err.contains("image tarball or OCI layout folder"), "{err}");
        let err = refused(&looped.join("x"));
        assert!(err.contains("goes through a symlink loop"), "{err}");
        let err = refused(&dangling);
        assert!(err.contains("gone.tar`, which does not exist"), "{err}");
        let err = refused(Path::new("./missing.tar"));
        assert!(err.contains("`./missing.tar` does not exist"), "{err}");
    }
}
