//! `nua-pack build`: load the nua-config, build, write the image, say where it went.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use std::process::ExitCode;

use crate::cli::args::BuildArgs;
use crate::cli::progress::{human_bytes, Lines};
use crate::cli::remote_cache::RegistryCache;
use crate::cli::transfer::Transfers;
use crate::cli::{settings, Hint};
use crate::outln;
use nua_build::{self as build, BuildOptions, Output};
use nua_config::{self as config, LoadOptions};
use nua_oci as oci;
use nua_registry::Reference;

pub fn run(args: &BuildArgs) -> anyhow::Result<ExitCode> {
    // A reference that does not parse is refused before anything is built.
    let push = args
        .push
        .as_deref()
        .map(Reference::parse)
        .transpose()
        .context("`--push` needs an image reference")?;
    if args.dry_run {
        let app = load_app(args)?;
        return dry_run(&app, args.report.json);
    }
    let Built {
        result, options, ..
    } = build_app(args, None, push.as_ref().map(|r| r.registry.as_str()))?;
    let registry = options.registry.clone();
    let pushed = match &push {
        Some(reference) => Some(push_built(&result, reference, registry, &options, args)?),
        None => None,
    };
    if args.report.json {
        let mut json = serde_json::to_value(&result)?;
        json["event"] = "result".into();
        if let Some(pushed) = &pushed {
            json["pushed"] = serde_json::json!({
                "reference": pushed.0.to_string(),
                "digest": pushed.1.digest.to_string(),
                "uploaded": pushed.1.uploaded(),
            });
        }
        outln!("{}", serde_json::to_string(&json)?)?;
    } else if !args.report.quiet {
        let output = result.output.display();
        outln!("built {}", result.tags.join(", "))?;
        outln!("  digest  {}", result.manifest_digest)?;
        outln!(
            "  size    {} in {} layers",
            human_bytes(result.size),
            result.layers.len()
        )?;
        outln!("  written {output}")?;
        if let Some((reference, pushed)) = &pushed {
            outln!(
                "  pushed  {reference}@{} ({} uploaded)",
                pushed.digest,
                human_bytes(pushed.uploaded())
            )?;
        }
        if matches!(options.output, Output::Tarball(_)) {
            outln!("load it with: docker load -i {output}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An app built by [`build_app`].
pub struct Built {
    pub app: config::Loaded,
    pub result: build::BuildResult,
    pub options: BuildOptions,
}

/// Load the nua-config of `args.path`, printing its warnings as `build` does.
fn load_app(args: &BuildArgs) -> anyhow::Result<config::Loaded> {
    let path = args.path.clone().unwrap_or_else(|| PathBuf::from("."));
    let app = config::load(
        &path,
        &LoadOptions {
            strict: args.strict,
        },
    )?;
    if !args.report.quiet {
        for warning in &app.warnings {
            eprintln!("warning: {warning}");
        }
    }
    if args.report.json && !args.dry_run {
        for warning in &app.warnings {
            let event = serde_json::json!({"event": "warning", "message": warning.to_string()});
            outln!("{event}")?;
        }
    }
    Ok(app)
}

/// Build the app `args` names, with progress on stderr (or JSON events on stdout), to
/// `output` or where `args` says. `push_registry` is the registry a push will go to, for
/// its credentials.
pub fn build_app(
    args: &BuildArgs,
    output: Option<Output>,
    push_registry: Option<&str>,
) -> anyhow::Result<Built> {
    // Explicit credentials are for the registry pushed to: the image's, else the cache's.
    let cache_registry = args
        .cache_to
        .as_deref()
        .and_then(|r| Reference::parse(r).ok())
        .map(|r| r.registry);
    let registry =
        settings::registry_options(&args.registry, push_registry.or(cache_registry.as_deref()))?;
    let cache_dir = settings::cache_dir()?;
    let app = load_app(args)?;
    if let Some(ca) = &args.ca_bundle {
        if !ca.is_file() {
            anyhow::bail!(
                "the CA bundle `{}` given with `--ca-bundle` is not a file",
                ca.display()
            );
        }
    }
    let source_date_epoch = settings::source_date_epoch(&app.root)?;
    let output = match (output, &args.output, args.oci_dir) {
        (Some(output), _, _) => output,
        (None, Some(p), false) => Output::Tarball(p.clone()),
        (None, Some(p), true) => Output::LayoutDir(p.clone()),
        (None, None, false) => Output::Tarball(PathBuf::from(app.config.image_file_name())),
        (None, None, true) => Output::LayoutDir(PathBuf::from(
            app.config.image_file_name().trim_end_matches(".tar"),
        )),
    };
    prepare_output(&output)?;
    let mut reporter = Lines::new(args.report.quiet, args.report.json).with_why(args.why);
    if args.report.json {
        reporter = reporter.with_json_events();
    }
    let remote = RegistryCache::open(
        &registry,
        &args.cache_from,
        args.cache_to.as_deref(),
        &mut |message| {
            build::Reporter::event(&mut reporter, build::Event::Warning { message: &message })
        },
    )?;
    let options = BuildOptions {
        cache_dir,
        catalog: settings::catalog()?,
        mirror: args.debian.mirror.clone(),
        registry,
        output,
        compression: if args.zstd {
            oci::Compression::Zstd(3)
        } else {
            oci::Compression::default()
        },
        source_date_epoch,
        tags: args.tags.clone(),
        no_cache: args.no_cache,
        ca_bundle: args.ca_bundle.clone().or_else(settings::ssl_cert_file),
        remote: build::Remote(remote.clone().map(|r| r as Arc<dyn build::RemoteCache>)),
        installer: settings::pip_installer()?,
    };
    match build::build(&app, &options, &mut reporter) {
        Ok(result) => {
            if let Some(remote) = &remote {
                push_cache(remote, &options.cache_dir, &mut reporter, args.report.json)?;
            }
            Ok(Built {
                app,
                result,
                options,
            })
        }
        Err(err) => {
            let err =
                anyhow::Error::new(err).context(format!("cannot build `{}`", app.file.display()));
            if args.report.json {
                // CI reads the failure on stdout too; stderr keeps the full explanation.
                let causes: Vec<String> = err.chain().map(|c| c.to_string()).collect();
                let event = serde_json::json!({"event": "error", "causes": causes});
                outln!("{event}")?;
            }
            Err(err)
        }
    }
}

/// `--cache-to`: push what the build used; a cache that cannot be written is a warning.
pub fn push_cache(
    remote: &RegistryCache,
    cache_dir: &std::path::Path,
    reporter: &mut dyn build::Reporter,
    json: bool,
) -> anyhow::Result<()> {
    let store = oci::BlobStore::open(cache_dir)?;
    match remote.push(&store) {
        Ok(Some(pushed)) => {
            if json {
                let event = serde_json::json!({
                    "event": "cache_pushed",
                    "reference": pushed.reference,
                    "digest": pushed.digest.to_string(),
                    "entries": pushed.entries,
                    "bytes_sent": pushed.bytes_sent,
                });
                outln!("{event}")?;
            } else {
                eprintln!(
                    "{:>10} {} ({} steps, {} sent)",
                    "cache",
                    pushed.reference,
                    pushed.entries,
                    human_bytes(pushed.bytes_sent)
                );
            }
        }
        Ok(None) => {}
        Err(e) => reporter.event(build::Event::Warning {
            message: &format!("{e:#}; the image is built all the same"),
        }),
    }
    Ok(())
}

/// `--dry-run`: the steps the build would run, and what each does.
fn dry_run(app: &config::Loaded, json: bool) -> anyhow::Result<ExitCode> {
    let config = &app.config;
    let mut steps: Vec<(String, String)> = Vec::new();
    let method = config.build_method();
    match method {
        config::BuildMethod::Wrap => {
            let image = config.build.base_image.clone().unwrap_or_default();
            steps.push(("pull".into(), format!("{image} (kept as it is)")));
            steps.push((
                "metadata".into(),
                "/nua/metadata/nua-config.json, /nua/scripts/start".into(),
            ));
        }
        config::BuildMethod::Build => {
            let choice = settings::catalog()?.base_for(&config.build)?;
            for warning in &choice.warnings {
                eprintln!("warning: {warning}");
            }
            let base = if choice.image {
                format!("{} (an image of its registry)", choice.base)
            } else {
                choice.base
            };
            steps.push(("base".into(), base));
            steps.extend(build::AppPlan::new(app)?.describe());
        }
    }
    if json {
        let steps: Vec<serde_json::Value> = steps
            .iter()
            .map(|(step, does)| serde_json::json!({"step": step, "does": does}))
            .collect();
        let plan = serde_json::json!({
            "app": config.id(),
            "image": config.image_tag(),
            "method": method,
            "steps": steps,
        });
        outln!("{}", serde_json::to_string(&plan)?)?;
    } else {
        let method = serde_json::to_value(method)?;
        outln!(
            "plan of {} ({} method)",
            config.image_tag(),
            method.as_str().unwrap_or_default()
        )?;
        for (step, does) in &steps {
            outln!("{step:>14}  {does}")?;
        }
        outln!("nothing was run (--dry-run)")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `--push`: the built image, from the store, to `reference`.
fn push_built(
    result: &build::BuildResult,
    reference: &Reference,
    registry: nua_registry::ClientOptions,
    options: &BuildOptions,
    args: &BuildArgs,
) -> anyhow::Result<(Reference, nua_registry::Pushed)> {
    let client = nua_registry::Client::new(registry)?;
    let store = oci::BlobStore::open(&options.cache_dir)?;
    let progress = Transfers::new(args.report.quiet || args.report.json);
    let pushed = nua_registry::push(
        &client,
        &store,
        &result.image_ref,
        reference,
        &nua_registry::PushOptions::default(),
        &progress,
    )
    .with_context(|| format!("built, but cannot push to `{reference}`"));
    progress.done();
    Ok((reference.clone(), pushed?))
}

/// Refuse an output that cannot be written before building anything; create the folder
/// the tarball goes in.
fn prepare_output(output: &Output) -> anyhow::Result<()> {
    match output {
        Output::Tarball(path) => {
            if path.is_dir() {
                return Err(
                    anyhow::anyhow!("`{}` is a folder", path.display()).context(Hint(
                        "give `--output` a file name for the tarball, or add `--oci-dir` to write \
                     an OCI layout folder"
                            .into(),
                    )),
                );
            }
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs_err::create_dir_all(parent)?;
            }
        }
        Output::LayoutDir(path) => {
            if path.exists() && !path.is_dir() {
                anyhow::bail!("`{}` exists and is not a folder", path.display());
            }
            fs_err::create_dir_all(path)?;
        }
    }
    Ok(())
}
