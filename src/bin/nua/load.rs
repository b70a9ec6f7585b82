//! `nua load`: send an image tarball (or OCI layout folder) to Docker Engine, leaving out the
//! layers it already has.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::args::LoadArgs;
use nua::cli::progress::human_bytes;
use nua::cli::Hint;
use nua::outln;
use nua_runtime::{Docker, Engine as _, Error, LoadOptions, Loaded};

pub fn run(args: &LoadArgs) -> anyhow::Result<ExitCode> {
    let engine = docker()?;
    let loaded = engine
        .load_image(
            &args.tarball,
            LoadOptions {
                thin: !args.full,
                verify: true,
            },
        )
        .with_context(|| format!("cannot load `{}`", args.tarball.display()))?;
    if args.output.json {
        outln!("{}", serde_json::to_string(&loaded)?)?;
    } else {
        for tag in &loaded.tags {
            outln!("loaded {tag}")?;
        }
        outln!("  image id {}", loaded.image_id)?;
        outln!("  sent     {}", sent(&loaded))?;
        if let Some(reason) = &loaded.fell_back {
            eprintln!(
                "warning: Docker refused the layers it has ({reason}); the whole image was sent"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `3 of 9 layers, 1.2 MB`.
pub fn sent(loaded: &Loaded) -> String {
    format!(
        "{} of {} layers, {}",
        loaded.layers_sent,
        loaded.layers,
        human_bytes(loaded.bytes_sent)
    )
}

/// Connect to Docker, or say how to start it.
pub fn docker() -> anyhow::Result<Docker> {
    match Docker::connect() {
        Ok(engine) => Ok(engine),
        Err(err @ Error::Connect { denied: true, .. }) => {
            Err(anyhow::Error::new(err).context(Hint(
                "Docker runs, but this user may not use its socket: join the `docker` group \
                 (`sudo usermod -aG docker $USER`, then log in again), or run as root"
                    .into(),
            )))
        }
        Err(err @ Error::Connect { .. }) => Err(anyhow::Error::new(err).context(Hint(
            "start Docker (`sudo systemctl start docker`, or `sudo dockerd &`), \
             or point `DOCKER_HOST` at a daemon you can reach"
                .into(),
        ))),
        Err(err) => Err(err.into()),
    }
}
