//! `nua load`: stream an image tarball into Docker Engine.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::args::LoadArgs;
use crate::cli::Hint;
use crate::runtime::{Docker, Engine as _, Error};

pub fn run(args: &LoadArgs) -> anyhow::Result<ExitCode> {
    let engine = match Docker::connect() {
        Ok(engine) => engine,
        Err(err @ Error::Connect { .. }) => {
            return Err(anyhow::Error::new(err).context(Hint(
                "start Docker (`sudo systemctl start docker`, or `sudo dockerd &`), \
                 or point `DOCKER_HOST` at a daemon you can reach",
            )))
        }
        Err(err) => return Err(err.into()),
    };
    let loaded = engine
        .load_image(&args.tarball)
        .with_context(|| format!("cannot load `{}`", args.tarball.display()))?;
    if args.json {
        println!("{}", serde_json::to_string(&loaded)?);
    } else {
        for tag in &loaded.tags {
            println!("loaded {tag}");
        }
        println!("  image id {}", loaded.image_id);
    }
    Ok(ExitCode::SUCCESS)
}
