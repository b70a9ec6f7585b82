//! `nua-pack build`: load the nua-config, build, write the image, say where it went.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::build::{self, BuildOptions, Event, Output, Reporter};
use crate::cli::args::BuildArgs;
use crate::cli::{settings, Hint};
use crate::config::{self, LoadOptions};
use crate::oci;

pub fn run(args: &BuildArgs) -> anyhow::Result<ExitCode> {
    let path = args.path.clone().unwrap_or_else(|| PathBuf::from("."));
    let cache_dir = settings::cache_dir()?;
    let base_rootfs = args.base_rootfs.clone();

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
        base_rootfs,
        output,
        compression: if args.zstd {
            oci::Compression::Zstd(3)
        } else {
            oci::Compression::default()
        },
        source_date_epoch,
        tags: args.tags.clone(),
    };

    let mut reporter = Lines {
        quiet: args.quiet || args.json,
        tty: std::io::stderr().is_terminal(),
        spinner: None,
    };
    let result = match build::build(&app, &options, &mut reporter) {
        Ok(result) => result,
        Err(err @ build::Error::BaseLayer { .. }) => {
            return Err(anyhow::Error::new(err)
                .context(format!("cannot build `{}`", app.file.display()))
                .context(Hint(
                    "`--base-rootfs` takes a root filesystem as a tar archive (plain, gzip or \
                     zstd), such as `mmdebstrap --variant=essential bookworm rootfs.tar` makes",
                )))
        }
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

/// One line per step on stderr; on a terminal, a spinner while the step runs.
struct Lines {
    quiet: bool,
    tty: bool,
    spinner: Option<indicatif::ProgressBar>,
}

impl Reporter for Lines {
    fn event(&mut self, event: Event<'_>) {
        if self.quiet {
            return;
        }
        match event {
            Event::StepStarted { step } if self.tty => {
                let spinner = indicatif::ProgressBar::new_spinner();
                spinner.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                        .expect("a valid template"),
                );
                spinner.set_message(format!("{step:>10}"));
                spinner.enable_steady_tick(Duration::from_millis(100));
                self.spinner = Some(spinner);
            }
            Event::StepStarted { .. } => {}
            Event::StepFinished {
                step,
                cached,
                elapsed,
            } => {
                if let Some(spinner) = self.spinner.take() {
                    spinner.finish_and_clear();
                }
                let status = if cached { "cached" } else { "done" };
                eprintln!("{step:>10} {status} in {}", human_duration(elapsed));
            }
            Event::Writing { path } => eprintln!("{:>10} {}", "writing", path.display()),
        }
    }
}

fn human_duration(d: Duration) -> String {
    if d.as_secs() >= 1 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
