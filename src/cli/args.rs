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

/// The builder's commands, shared by `nua-pack` and `nua`.
#[derive(Debug, Subcommand)]
pub enum PackCommand {
    /// Load and validate a nua-config, print it normalized
    #[command(mut_arg("json", |a| a.help("Print the normalized config, warnings and errors as JSON")))]
    Check(CheckArgs),
    /// Build the image of an application
    #[command(
        mut_arg("json", |a| a.help("Print each build event, then the result, as one JSON object per line")),
        mut_arg("mirror", |a| a.help("The Debian mirror for base images, instead of the machine's apt sources")),
    )]
    Build(BuildArgs),
    /// Base images: list, build and lock the definitions of `base-images/`
    #[command(subcommand)]
    Base(BaseCommand),
    /// Pull an image from a registry into the cache, optionally writing it out
    Pull(PullArgs),
    /// Push an image tarball (or OCI layout directory) to a registry
    Push(PushArgs),
    /// Show the manifest, config and layers of an image in a registry or a tarball
    Inspect(InspectArgs),
    /// The local cache of layers, blobs and packages: list it, prune it
    #[command(subcommand)]
    Cache(CacheCommand),
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List the cached layers (most recently used first) and what the cache holds
    #[command(mut_arg("json", |a| a.help("Print the list as JSON")))]
    Ls(CacheLsArgs),
    /// Remove the layers no build used for a while, and what only they needed
    ///
    /// Also removes the tools nua fetched (uv) that no build ran in that time, fetched again
    /// when needed, and deletes the blobs `cache verify` or a build moved aside as corrupt.
    #[command(mut_arg("json", |a| a.help("Print what was removed as JSON")))]
    Prune(CachePruneArgs),
    /// Check every cached blob against its digest, moving corrupt ones aside
    ///
    /// A blob whose bytes no longer match its digest (a disk fault, tampering) is moved to
    /// the cache's `corrupt/` folder and fetched again by the next pull or build. Lists each
    /// blob moved aside, then a summary; also reports what `corrupt/` holds from before
    /// (`cache prune` deletes it).
    ///
    /// Exit status: 0 when every blob is intact, 1 when any was corrupt.
    #[command(mut_arg("json", |a| a.help("Print the result as JSON")))]
    Verify(CacheVerifyArgs),
}

#[derive(Debug, Args)]
pub struct CacheVerifyArgs {
    #[command(flatten)]
    pub output: JsonArgs,
}

#[derive(Debug, Args)]
pub struct CacheLsArgs {
    #[command(flatten)]
    pub output: JsonArgs,
}

#[derive(Debug, Args)]
pub struct CachePruneArgs {
    /// Keep what a build used in the last N days (with 0, what the last hour wrote stays:
    /// a build may be running)
    #[arg(long, value_name = "N", default_value_t = 14)]
    pub keep_days: u64,
    #[command(flatten)]
    pub output: JsonArgs,
}

/// How to reach registries: shared by `pull`, `push` and `inspect`.
#[derive(Debug, Args, Clone, Default)]
pub struct RegistryArgs {
    /// Speak plain HTTP, not HTTPS, to this registry (repeatable)
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registries: Vec<String>,
    /// The user name for the registry; the password is read with `--password-stdin`
    #[arg(long, requires = "password_stdin")]
    pub username: Option<String>,
    /// Read the registry password (or token) from standard input
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
}

/// What a command that reports progress prints: shared by `build`, `base build`, `pull` and
/// `push`.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct ReportArgs {
    /// Print nothing but errors
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

/// `--json`, for the commands that print a result and no progress.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct JsonArgs {
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The image: NAME[:TAG], HOST[:PORT]/NAME[:TAG] or …@sha256:DIGEST
    pub reference: String,
    /// Write the image as a tarball (loads in `docker load`, podman, skopeo)
    #[arg(short, long, value_name = "FILE", conflicts_with = "oci_dir")]
    pub output: Option<PathBuf>,
    /// Write the image as an OCI image layout directory
    #[arg(long, value_name = "DIR")]
    pub oci_dir: Option<PathBuf>,
    /// The platform to pick from a multi-platform image
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", default_value = "linux/amd64")]
    pub platform: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image tarball or OCI layout directory
    pub tarball: PathBuf,
    /// Where to push: HOST[:PORT]/NAME[:TAG]
    pub reference: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// An image tarball, an OCI layout directory, or a registry reference
    pub image: String,
    /// The platform to pick from a multi-platform image in a registry
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", default_value = "linux/amd64")]
    pub platform: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub output: JsonArgs,
}

#[derive(Debug, Subcommand)]
pub enum BaseCommand {
    /// List the base images, what they are made of and the builder names they answer to
    #[command(mut_arg("json", |a| a.help("Print the list as JSON")))]
    List(BaseListArgs),
    /// Build a base image from Debian packages (cached), optionally writing it as an image
    Build(BaseBuildArgs),
    /// Resolve the packages of a base against the live archive and write its lock file
    Lock(BaseLockArgs),
    /// List the locked packages the archive has a newer version of, security fixes first
    ///
    /// Exits with 1 when a security fix is missing from a lock (for CI), else 0.
    #[command(mut_arg("json", |a| a.help("Print the list as JSON")))]
    Outdated(BaseOutdatedArgs),
}

#[derive(Debug, Args)]
pub struct BaseListArgs {
    #[command(flatten)]
    pub output: JsonArgs,
}

#[derive(Debug, Args)]
pub struct BaseBuildArgs {
    /// The base image (see `nua-pack base list`), or a builder name that resolves to one
    pub name: String,
    /// Also write the base as an image tarball
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Name the image NAME or NAME:TAG (repeatable) [default: nua-base-NAME:latest]
    #[arg(short, long = "tag", value_name = "NAME")]
    pub tags: Vec<String>,
    #[command(flatten)]
    pub debian: DebianArgs,
    /// Take the layers of steps from the build cache REF in a registry (repeatable)
    #[arg(long, value_name = "REF")]
    pub cache_from: Vec<String>,
    /// Push the base's layers, by step key, as the build cache REF
    #[arg(long, value_name = "REF")]
    pub cache_to: Option<String>,
    /// Registry access, for a base that starts from a registry `image` and the build caches
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Debug, Args)]
pub struct BaseLockArgs {
    /// The base images to lock [default: all]
    pub names: Vec<String>,
    /// Write the lock here instead of `base-images/NAME.lock` (one name only)
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub debian: DebianArgs,
    /// Registry access, for a base that starts from a registry `image`
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct BaseOutdatedArgs {
    /// The base images to check [default: all]
    pub names: Vec<String>,
    #[command(flatten)]
    pub output: JsonArgs,
    #[command(flatten)]
    pub debian: DebianArgs,
}

/// Where Debian packages come from.
#[derive(Debug, Args, Clone, Default)]
pub struct DebianArgs {
    /// The Debian mirror to use instead of the machine's apt sources
    /// (e.g. http://deb.debian.org/debian)
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The app folder or the nua-config file [default: .]
    pub path: Option<PathBuf>,
    #[command(flatten)]
    pub output: JsonArgs,
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
    #[command(flatten)]
    pub debian: DebianArgs,
    /// Compress layers with zstd instead of gzip (Docker 23+ and podman read zstd)
    #[arg(long)]
    pub zstd: bool,
    /// Also push the image to REF (HOST[:PORT]/NAME[:TAG]) once it is written
    #[arg(long, value_name = "REF")]
    pub push: Option<String>,
    /// Make every step above the base again instead of taking it from the cache (the base,
    /// like a Dockerfile's FROM image, is kept; `nua-pack cache prune` removes it)
    #[arg(long)]
    pub no_cache: bool,
    /// Say, for each step made again, which of its inputs changed
    #[arg(long)]
    pub why: bool,
    /// Print the plan (the steps and what each does) and stop: nothing is run or written
    #[arg(long)]
    pub dry_run: bool,
    /// The CA bundle build commands trust (pip, npm, git, curl) [default: the machine's]
    #[arg(long, value_name = "FILE")]
    pub ca_bundle: Option<PathBuf>,
    /// Take the layers of steps from the build cache REF in a registry (repeatable): a step
    /// whose key a cache holds is not run; a cache that cannot be read is a warning
    #[arg(long, value_name = "REF")]
    pub cache_from: Vec<String>,
    /// Push the layers this build used, by step key, as the build cache REF (an OCI
    /// artifact), for `--cache-from` of later builds
    #[arg(long, value_name = "REF")]
    pub cache_to: Option<String>,
    /// Registry access, for `--push`, the build caches and the `base-image` of a wrap build
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Treat config warnings as errors
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub report: ReportArgs,
}
