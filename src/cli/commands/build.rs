//! `nua-pack build`: load the nua-config, build, write the image, say where it went.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::build::{self, BuildOptions, Output};
use crate::cli::args::BuildArgs;
use crate::cli::progress::{human_bytes, Lines};
use crate::cli::{settings, Hint};
use crate::config::{self, LoadOptions};
use crate::oci;

pub fn run(args: &BuildArgs) -> anyhow::Result<ExitCode> {
    let path = args.path.clone().unwrap_or_else(|| PathBuf::from("."));
    let cache_dir = settings::cache_dir()?;

    let app = config::load(
        &path,
        &LoadOptions {
            strict: args.strict,
        },
    )?;
    if !args.quiet {
        for warning in &app.warnings {
            eprintln!("warning: {warning}");
        }
    }
    let source_date_epoch = settings::source_date_epoch(&app.root)?;
    let output = match (&args.output, args.oci_dir) {
        (Some(p), false) => Output::Tarball(p.clone()),
        (Some(p), true) => Output::LayoutDir(p.clone()),
        (None, false) => Output::Tarball(PathBuf::from(app.config.image_file_name())),
        (None, true) => Output::LayoutDir(PathBuf::from(
            app.config.image_file_name().trim_end_matches(".tar"),
        )),
    };
    prepare_output(&output)?;
    let options = BuildOptions {
        cache_dir,
        catalog: settings::catalog()?,
        mirror: args.mirror.clone(),
        output,
        compression: if args.zstd {
            oci::Compression::Zstd(3)
        } else {
            oci::Compression::default()
        },
        source_date_epoch,
        tags: args.tags.clone(),
    };

    let mut reporter = Lines::new(args.quiet, args.json);
    let result = match build::build(&app, &options, &mut reporter) {
        Ok(result) => result,
        Err(err) => {
            return Err(
                anyhow::Error::new(err).context(format!("cannot build `{}`", app.file.display()))
            )
        }
    };

    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    } else if !args.quiet {
        let output = result.output.display();
        println!("built {}", result.tags.join(", "));
        println!("  digest  {}", result.manifest_digest);
        println!(
            "  size    {} in {} layers",
            human_bytes(result.size),
            result.layers.len()
        );
        println!("  written {output}");
        if matches!(options.output, Output::Tarball(_)) {
            println!("load it with: docker load -i {output}");
        }
    }
    Ok(ExitCode::SUCCESS)
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
                     an OCI layout folder",
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
