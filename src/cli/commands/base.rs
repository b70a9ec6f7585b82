//! `nua-pack base list|build|lock|outdated`: the base images of `base-images/`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::args::{BaseBuildArgs, BaseCommand, BaseListArgs, BaseLockArgs, BaseOutdatedArgs};
use crate::cli::progress::{human_bytes, Lines};
use crate::cli::remote_cache::RegistryCache;
use crate::cli::{settings, Hint};
use crate::outln;
use nua_build::base::{self, BaseOptions, Catalog};
use nua_build::metadata::image_env;
use nua_oci as oci;

pub fn run(cmd: &BaseCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BaseCommand::List(args) => list(args),
        BaseCommand::Build(args) => build(args),
        BaseCommand::Lock(args) => lock(args),
        BaseCommand::Outdated(args) => outdated(args),
    }
}

#[derive(serde::Serialize)]
struct Listed<'a> {
    name: &'a str,
    description: &'a str,
    /// `bootstrap <suite>` or the base it is built from.
    from: String,
    layers: Vec<&'a str>,
    builders: &'a [String],
    /// `fresh`, `stale` or `missing`.
    lock: &'static str,
}

fn list(args: &BaseListArgs) -> anyhow::Result<ExitCode> {
    let catalog = settings::catalog()?;
    let mut rows = Vec::new();
    for name in catalog.names() {
        let def = catalog.base(name)?;
        let from = match (&def.image, &def.from, &def.bootstrap) {
            (Some(image), _, _) => image.clone(),
            (None, Some(from), _) => from.clone(),
            (None, None, Some(b)) => format!("debian {}", b.suite),
            (None, None, None) => unreachable!("the catalog checks this"),
        };
        rows.push(Listed {
            name,
            description: &def.description,
            from,
            layers: def.layers.iter().map(String::as_str).collect(),
            builders: &def.builders,
            lock: lock_state(&catalog, name)?,
        });
    }
    if args.output.json {
        outln!("{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{:<16} {:<16} {:<8} DESCRIPTION", "NAME", "FROM", "LOCK")?;
    for row in &rows {
        outln!(
            "{:<16} {:<16} {:<8} {}",
            row.name,
            row.from,
            row.lock,
            row.description
        )?;
        if !row.builders.is_empty() {
            outln!("{:<16} builders: {}", "", row.builders.join(", "))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn lock_state(catalog: &Catalog, name: &str) -> anyhow::Result<&'static str> {
    let Some(text) = catalog.lock_text(name) else {
        return Ok("missing");
    };
    let lock = base::Lock::parse(text, &format!("base-images/{name}.lock"))?;
    Ok(if lock.fingerprint == catalog.fingerprint(name)? {
        "fresh"
    } else {
        "stale"
    })
}

#[derive(serde::Serialize)]
struct Built {
    base: String,
    locked: bool,
    layers: Vec<nua_build::LayerSummary>,
    size: u64,
    image: Option<String>,
    manifest_digest: Option<String>,
    output: Option<PathBuf>,
}

fn build(args: &BaseBuildArgs) -> anyhow::Result<ExitCode> {
    let catalog = settings::catalog()?;
    let cache_dir = settings::cache_dir()?;
    let resolved = catalog.resolve_builder(&args.name)?;
    let mut reporter = Lines::new(args.report.quiet, args.report.json);
    if let Some(message) = &resolved.warning {
        nua_build::Reporter::event(&mut reporter, nua_build::Event::Warning { message });
    }
    let store = oci::BlobStore::open(&cache_dir)?;
    let registry = settings::registry_options(&args.registry, None)?;
    let remote = RegistryCache::open(
        &registry,
        &args.cache_from,
        args.cache_to.as_deref(),
        &mut |message| {
            nua_build::Reporter::event(
                &mut reporter,
                nua_build::Event::Warning { message: &message },
            )
        },
    )?;
    let options = BaseOptions {
        cache_dir: cache_dir.clone(),
        layer: oci::LayerOptions::default(),
        registry,
        remote: nua_build::Remote(
            remote
                .clone()
                .map(|r| r as std::sync::Arc<dyn nua_build::RemoteCache>),
        ),
    };
    let (plan, built) = base::build(
        &catalog,
        &resolved.base,
        args.debian.mirror.as_deref(),
        &store,
        &options,
        &mut reporter,
    )
    .with_context(|| format!("cannot build base image `{}`", resolved.base))?;
    if let Some(remote) = &remote {
        crate::cli::commands::build::push_cache(
            remote,
            &cache_dir,
            &mut reporter,
            args.report.json,
        )?;
    }

    let mut result = Built {
        base: built.name.clone(),
        locked: plan.locked,
        size: built.layers.iter().map(|l| l.layer.descriptor.size).sum(),
        layers: built.layers.clone(),
        image: None,
        manifest_digest: None,
        output: None,
    };
    if let Some(output) = &args.output {
        let tags = if args.tags.is_empty() {
            vec![format!("nua-base-{}:latest", built.name)]
        } else {
            args.tags.clone()
        };
        let names = tags
            .iter()
            .map(|t| {
                oci::ImageName::parse(t).with_context(|| format!("`{t}` is not a valid image name"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let image = base_image(&store, &plan, &built)?;
        if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs_err::create_dir_all(parent)?;
        }
        oci::write_tarball(&store, &image, &names, output)
            .with_context(|| format!("cannot write `{}`", output.display()))?;
        result.image = Some(tags[0].clone());
        result.manifest_digest = Some(image.manifest.digest.to_string());
        result.output = Some(output.clone());
    }

    if args.report.json {
        outln!("{}", serde_json::to_string(&result)?)?;
    } else if !args.report.quiet {
        outln!(
            "base {} ({} layers, {})",
            result.base,
            result.layers.len(),
            human_bytes(result.size)
        )?;
        if let (Some(digest), Some(output)) = (&result.manifest_digest, &result.output) {
            outln!("  digest  {digest}")?;
            outln!("  written {}", output.display())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn lock(args: &BaseLockArgs) -> anyhow::Result<ExitCode> {
    // Locks are written beside the definitions they are made from: those of
    // `NUA_BASE_IMAGES`, else the `base-images/` folder here (a checkout), else none.
    let catalog = settings::catalog_for_writing()?;
    let cache_dir = settings::cache_dir()?;
    let names: Vec<String> = if args.names.is_empty() {
        catalog.names().map(str::to_owned).collect()
    } else {
        args.names.clone()
    };
    if args.output.is_some() && names.len() != 1 {
        anyhow::bail!("`--output` takes one base name, not {}", names.len());
    }
    let dir = catalog.dir().map(std::path::Path::to_path_buf);
    let store = oci::BlobStore::open(&cache_dir)?;
    let options = BaseOptions {
        cache_dir: cache_dir.clone(),
        layer: oci::LayerOptions::default(),
        registry: settings::registry_options(&args.registry, None)?,
        remote: Default::default(),
    };
    let mut reporter = Lines::new(true, false);
    for name in &names {
        catalog.base(name)?;
        let path =
            match (&args.output, &dir) {
                (Some(path), _) => path.clone(),
                (None, Some(dir)) => dir.join(format!("{name}.lock")),
                (None, None) => return Err(anyhow::anyhow!(
                    "there is no `base-images/` folder here to write `{name}.lock` in"
                )
                .context(Hint(
                    "run it in a checkout of nua, set `NUA_BASE_IMAGES`, or give `--output FILE`"
                        .into(),
                ))),
            };
        let mirror = args.debian.mirror.as_deref();
        let lock = base::lock(&catalog, name, mirror, &store, &options, &mut reporter)
            .with_context(|| format!("cannot lock base image `{name}`"))?;
        let count: usize = lock.steps.iter().map(|s| s.packages.len()).sum();
        // A lock is part of the source tree: readable by all, like the files beside it.
        nua_oci::fs::write_atomic(&path, lock.to_text().as_bytes())?;
        eprintln!("locked {name}: {count} packages in {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `base outdated`: what `base lock` would move, security fixes first; exit 1 when a
/// security fix is missing, so a CI job fails on it.
fn outdated(args: &BaseOutdatedArgs) -> anyhow::Result<ExitCode> {
    let catalog = settings::catalog()?;
    let store = oci::BlobStore::open(&settings::cache_dir()?)?;
    let found = base::outdated(&catalog, &args.names, args.debian.mirror.as_deref(), &store)
        .context("cannot compare the locks with the archive")?;
    let missing_fix = found.iter().any(|o| o.security);
    if args.output.json {
        outln!("{}", serde_json::to_string_pretty(&found)?)?;
    } else if found.is_empty() {
        eprintln!("every locked package is the newest of the archive");
    } else {
        outln!(
            "{:<16} {:<24} {:<28} {:<28} SUITE",
            "BASE",
            "PACKAGE",
            "LOCKED",
            "AVAILABLE"
        )?;
        for o in &found {
            outln!(
                "{:<16} {:<24} {:<28} {:<28} {}",
                o.base,
                o.package,
                o.locked,
                o.available,
                o.suite
            )?;
        }
    }
    if missing_fix {
        let bases: std::collections::BTreeSet<&str> = found
            .iter()
            .filter(|o| o.security)
            .map(|o| o.base.as_str())
            .collect();
        let names: Vec<&str> = bases.into_iter().collect();
        eprintln!(
            "error: security fixes are missing from the locks of {}",
            names.join(", ")
        );
        eprintln!("hint: run `nua-pack base lock {}`", names.join(" "));
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Build base `name` (from the cache when it is there) and write it as an OCI layout folder
/// at `dir`, named `nua-<name>:<first 12 hex of its manifest digest>`: the image of a
/// provider `nua deploy` runs. Returns that name.
pub fn write_base_layout(
    name: &str,
    mirror: Option<&str>,
    dir: &std::path::Path,
) -> anyhow::Result<String> {
    let catalog = settings::catalog()?;
    let cache_dir = settings::cache_dir()?;
    let store = oci::BlobStore::open(&cache_dir)?;
    let options = BaseOptions {
        cache_dir: cache_dir.clone(),
        layer: oci::LayerOptions::default(),
        registry: Default::default(),
        remote: Default::default(),
    };
    let mut reporter = Lines::new(true, false);
    let (plan, built) = base::build(&catalog, name, mirror, &store, &options, &mut reporter)
        .with_context(|| format!("cannot build base image `{name}`"))?;
    let image = base_image(&store, &plan, &built)?;
    let tag = format!("nua-{name}:{}", &image.manifest.digest.hex()[..12]);
    let image_name = oci::ImageName::parse(&tag)?;
    oci::write_layout_dir(&store, &image, &[image_name], dir)
        .with_context(|| format!("cannot write `{}`", dir.display()))?;
    Ok(tag)
}

/// The image of a built base: its layers and its config, in the store.
fn base_image(
    store: &oci::BlobStore,
    plan: &base::Plan,
    built: &base::BaseImage,
) -> anyhow::Result<oci::ImageRef> {
    let config = built.config.container_config(image_env(&built.env));
    let layers = built.layers.iter().map(|l| l.layer.clone()).collect();
    Ok(oci::write_image(
        store,
        &oci::ImageSpec::new(layers, config, plan.source_date_epoch),
    )?)
}
