//! clap definitions of the run side, the commands only `nua` has.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use nua::cli::args::{DebianArgs, JsonArgs, PackCommand};

/// nua: build and run Nua applications
#[derive(Debug, Parser)]
#[command(name = "nua", version, propagate_version = true)]
pub struct NuaCli {
    #[command(subcommand)]
    pub command: NuaCommand,
}

/// Every command of `nua`: the builder's, then the run side.
#[derive(Debug, Subcommand)]
pub enum NuaCommand {
    #[command(flatten)]
    Pack(PackCommand),
    /// Load an image tarball into Docker Engine, sending only the layers it lacks
    Load(LoadArgs),
    /// Run an app on Docker: build it (a folder) or load it (a tarball) first
    #[command(mut_arg("mirror", |a| a.help("The Debian mirror for base images, instead of the machine's apt sources")))]
    Run(RunArgs),
    /// List the apps `nua run` started, running or not
    #[command(mut_arg("json", |a| a.help("Print the list as JSON")))]
    Ps(PsArgs),
    /// Show the output of an app started with `nua run`, or of a deployed instance
    Logs(LogsArgs),
    /// Stop an app started with `nua run` and remove its container (its volumes stay), or
    /// stop a deployed instance (kept stopped until `nua start`)
    Stop(StopArgs),
    /// Deploy the sites of a deploy file: each app with its providers, recorded and applied
    #[command(mut_arg("mirror", |a| a.help("The Debian mirror for base images, instead of the machine's apt sources")))]
    Deploy(DeployArgs),
    /// Show the deployed instances, their generation, state, health and ports
    #[command(mut_arg("json", |a| a.help("Print one object per instance as JSON")))]
    Status(StatusArgs),
    /// Remove a deployed instance (its volumes and secrets stay unless `--volumes`)
    Remove(RemoveArgs),
    /// List the nodes of the Docker Swarm this server manages, and the instances' tasks on each
    #[command(mut_arg("json", |a| a.help("Print one object per node as JSON")))]
    Nodes(NodesArgs),
    /// Show the journal of deployments: who deployed what, when, and how it ended
    #[command(mut_arg("json", |a| a.help("Print the journal as JSON")))]
    History(HistoryArgs),
    /// Run a deployed instance stopped with `nua stop`
    Start(LabelArgs),
    /// Stop a deployed instance, then run it again
    Restart(LabelArgs),
    /// Freeze every process of a deployed instance (memory, ports and data are kept)
    Pause(LabelArgs),
    /// Thaw an instance frozen with `nua pause`
    Unpause(LabelArgs),
    /// Make Docker match the recorded instances again (all, or one)
    Reconcile(ReconcileArgs),
    /// Run an instance as an earlier generation did (its image and settings; data stays)
    Rollback(RollbackArgs),
    /// Keep the instances running: reconcile now and every `--interval` seconds
    Server(ServerArgs),
    /// The certificates of the served domains: issuer, expiry, last order and its error
    Certs(CertsArgs),
    /// Back up instances (all, or those named) into the restic repository, each component
    /// verified by a restore into a scratch container
    #[command(mut_arg("json", |a| a.help("Print the backups made as JSON")))]
    Backup(BackupArgs),
    /// List the backups: status, size, duration, and what was verified
    #[command(mut_arg("json", |a| a.help("Print the backups as JSON")))]
    Backups(BackupsArgs),
    /// Put an instance's data back from a verified backup (the latest by default), after a
    /// safety backup of what is there now
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The instances' labels [default: every instance]
    pub labels: Vec<String>,
    /// Every component (each database and managed volume), not only those the nua-configs'
    /// `[backup]` name
    #[arg(long)]
    pub all: bool,
    /// Only this component (a provider's or a volume's name)
    #[arg(long, value_name = "NAME")]
    pub component: Option<String>,
    /// Say nothing but errors and the result
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub output: JsonArgs,
}

#[derive(Debug, Args)]
pub struct BackupsArgs {
    /// Only this instance
    pub label: Option<String>,
    #[command(flatten)]
    pub output: JsonArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The instance's label
    pub label: String,
    /// The backup to restore (as `nua backups` lists it) [default: the latest verified]
    #[arg(long, value_name = "ID")]
    pub backup: Option<u64>,
    /// Only this component (a provider's or a volume's name)
    #[arg(long, value_name = "NAME")]
    pub component: Option<String>,
    /// Say nothing but errors and the result
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct LabelArgs {
    /// The instance's label (as `nua status` shows it)
    pub label: String,
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Only this instance
    pub label: Option<String>,
    /// Say nothing but errors
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The instance's label
    pub label: String,
    /// The generation to go back to [default: the one before the current one]
    #[arg(long, value_name = "GENERATION")]
    pub to: Option<u64>,
    /// Also put back the data as it was when that generation was replaced (the backup taken
    /// before the upgrade), after a safety backup of today's
    #[arg(long)]
    pub with_data: bool,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    #[command(subcommand)]
    pub action: Option<ServerAction>,
    /// Seconds between two reconciliations
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub interval: u64,
}

#[derive(Debug, Subcommand)]
pub enum ServerAction {
    /// Write a systemd unit that runs `nua server` after Docker starts
    Install {
        /// Where to write it [default: /etc/systemd/system/nua.service]
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The deploy file: `[[site]]` entries in TOML, JSON or YAML
    pub file: PathBuf,
    /// Deploy only the site with this label (repeatable)
    #[arg(long, value_name = "LABEL")]
    pub label: Vec<String>,
    /// Let a site replace the app its label runs by another app (its data is deleted)
    #[arg(long)]
    pub replace: bool,
    /// Upgrade without first taking a verified backup of the instance's data (the backup
    /// `nua rollback --with-data` restores)
    #[arg(long)]
    pub no_backup: bool,
    #[command(flatten)]
    pub debian: DebianArgs,
    /// Say nothing but errors
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this instance
    pub label: Option<String>,
    #[command(flatten)]
    pub output: JsonArgs,
}

#[derive(Debug, Args)]
pub struct NodesArgs {
    #[command(flatten)]
    pub output: JsonArgs,
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    #[command(flatten)]
    pub output: JsonArgs,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The instance's label (as `nua status` shows it)
    pub label: String,
    /// Also delete its volumes and secrets (its data is lost)
    #[arg(long)]
    pub volumes: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this instance
    pub label: Option<String>,
    #[command(flatten)]
    pub output: JsonArgs,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The image tarball (`nua-<id>_<version>-<release>.tar`) or OCI layout folder
    pub tarball: PathBuf,
    /// Send every layer, even those Docker already has
    #[arg(long)]
    pub full: bool,
    #[command(flatten)]
    pub output: JsonArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// An app folder or nua-config (built first), an image tarball or OCI layout folder
    /// (loaded first), or the reference of an image Docker has [default: .]
    pub target: Option<String>,
    /// Set an environment variable (repeatable); `KEY` alone takes this shell's value
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Leave the app running in the background once it has started (healthy, when the image
    /// has a health check)
    #[arg(short, long)]
    pub detach: bool,
    /// Name of the container [default: the app's id]
    #[arg(long)]
    pub name: Option<String>,
    /// Let the nua-config of an image (not of an app folder) mount host folders with
    /// `bind` or `directory` volumes
    #[arg(long)]
    pub allow_host_mounts: bool,
    /// Build every step again (for an app folder)
    #[arg(long)]
    pub no_cache: bool,
    #[command(flatten)]
    pub debian: DebianArgs,
    /// The CA bundle build commands trust [default: the machine's]
    #[arg(long, value_name = "FILE")]
    pub ca_bundle: Option<PathBuf>,
    /// Seconds to wait for the app to stop on Ctrl-C before killing it
    #[arg(
        short = 't',
        long = "time",
        value_name = "SECONDS",
        default_value_t = 10
    )]
    pub stop_timeout: u64,
    /// With `--detach`: print the result as JSON on stdout
    #[arg(long, requires = "detach")]
    pub json: bool,
    /// Follow the app folder: on every change, rebuild what changed and put the new version
    /// in place once it is healthy, its ports answering all along
    #[arg(short, long, conflicts_with = "detach")]
    pub watch: bool,
    /// Say nothing but errors (the app's output is still shown)
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    #[command(flatten)]
    pub output: JsonArgs,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The app's name or the instance's label (as `nua ps` shows it)
    pub name: String,
    /// Of an instance: the output of this provider instead of the app's
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,
    /// Keep printing output as it comes
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<u64>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// The app's name or the instance's label (as `nua ps` shows it)
    pub name: String,
    /// Seconds to wait for it to stop before killing it
    #[arg(
        short = 't',
        long = "time",
        value_name = "SECONDS",
        default_value_t = 10
    )]
    pub time: u64,
    /// Also remove its named volumes (their data is lost)
    #[arg(long)]
    pub volumes: bool,
}
