//! clap definitions for `nua-pack` and `nua`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// nua-pack: build OCI images from a nua-config, without a Docker daemon and without root
#[derive(Debug, Parser)]
#[command(name = "nua-pack", version, propagate_version = true)]
pub struct PackCli {
    #[command(subcommand)]
    pub command: PackCommand,
}

/// nua: build and run Nua applications
#[derive(Debug, Parser)]
#[command(name = "nua", version, propagate_version = true)]
pub struct NuaCli {
    #[command(subcommand)]
    pub command: NuaCommand,
}

/// The builder's commands, shared by `nua-pack` and `nua`.
#[derive(Debug, Subcommand)]
pub enum PackCommand {
    /// Load and validate a nua-config, print it normalized
    Check(CheckArgs),
    /// Build the image of an application
    Build(BuildArgs),
}

/// Every command of `nua`: the builder's, then the run side.
#[derive(Debug, Subcommand)]
pub enum NuaCommand {
    #[command(flatten)]
    Pack(PackCommand),
    /// Load an image tarball into Docker Engine
    #[cfg(feature = "runtime")]
    Load(LoadArgs),
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The image tarball (`nua-<id>_<version>-<release>.tar`)
    pub tarball: PathBuf,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The app folder or the nua-config file [default: .]
    pub path: Option<PathBuf>,
    /// Print the normalized config, warnings and errors as JSON
    #[arg(long)]
    pub json: bool,
    /// Treat warnings (legacy keys moved) as errors
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The app folder or the nua-config file [default: .]
    pub path: Option<PathBuf>,
    /// Where to write the image tarball [default: ./nua-ID_VERSION-RELEASE.tar]
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Name the image NAME or NAME:TAG (repeatable) [default: nua-ID:VERSION-RELEASE]
    #[arg(short, long = "tag", value_name = "NAME")]
    pub tags: Vec<String>,
    /// Write an OCI image layout directory instead of a tarball
    #[arg(long)]
    pub oci_dir: bool,
    /// The base layer: a root filesystem tarball, plain, gzip or zstd (until base images
    /// are bootstrapped by nua-pack itself)
    #[arg(long, value_name = "TARBALL")]
    pub base_rootfs: PathBuf,
    /// Compress layers with zstd instead of gzip (Docker 23+ and podman read zstd)
    #[arg(long)]
    pub zstd: bool,
    /// Treat config warnings as errors
    #[arg(long)]
    pub strict: bool,
    /// Print nothing but errors
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}
