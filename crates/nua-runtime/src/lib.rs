//! The bridge to Docker Engine at run time, and the only user of bollard.
//!
//! Orchestration talks to an [`Engine`]: load an image, volumes, networks, containers, logs,
//! exec, health. [`Docker`] is the real one; [`fake::FakeEngine`] keeps everything in memory
//! for the unit tests of what sits above. This module knows nothing of nua-configs: it runs
//! what it is given.

mod docker;
pub mod fake;
mod load;
mod patch;
pub mod swarm;
mod types;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use docker::Docker;
pub use load::{chain_ids, describe_image, read_image_file, thin_archive, ArchivePlan};
pub use patch::{patch_between, Patch};
pub use swarm::Swarm;
pub use types::*;

/// A container engine. Every method blocks; an engine can be shared between threads (one
/// follows logs while another watches health).
pub trait Engine: Sync {
    /// Verify an image (tarball or OCI layout folder), send it to the engine, and check that
    /// the engine's image ID and layers are the ones of its config. With `thin`, the layers
    /// the engine already has (same ChainID) are left out of what is sent.
    fn load_image(&self, image: &Path, options: LoadOptions) -> Result<Loaded, Error>;
    /// The image a reference names, if the engine has it.
    fn image(&self, reference: &str) -> Result<Option<ImageDetails>, Error>;
    /// Remove an image (by ID or name) with the layers no other image uses; one that does not
    /// exist is no error, one a container uses is refused.
    fn remove_image(&self, reference: &str) -> Result<(), Error>;
    /// A file of an image (its content), read without starting it; `None` if it is absent.
    fn read_image_file(&self, image: &str, path: &str) -> Result<Option<Vec<u8>>, Error>;

    /// Create a named volume; an existing one of that name is kept as it is.
    fn create_volume(&self, spec: &VolumeSpec) -> Result<(), Error>;
    /// The names of the volumes carrying `label=value`.
    fn volumes(&self, label: &str, value: &str) -> Result<Vec<String>, Error>;
    /// Remove a volume and its data; one that does not exist is no error.
    fn remove_volume(&self, name: &str) -> Result<(), Error>;
    /// Create a bridge network; an existing one of that name is kept.
    fn create_network(&self, name: &str, labels: &Labels) -> Result<(), Error>;
    /// Remove a network; one that does not exist is no error.
    fn remove_network(&self, name: &str) -> Result<(), Error>;

    /// Create a container (not started); returns its ID.
    fn create_container(&self, spec: &ContainerSpec) -> Result<String, Error>;
    /// Start a container; [`Error::PortTaken`] when a host port is in use.
    fn start_container(&self, name: &str) -> Result<(), Error>;
    /// Stop a container: SIGTERM, then SIGKILL after `timeout`.
    fn stop_container(&self, name: &str, timeout: Duration) -> Result<(), Error>;
    /// Freeze or thaw every process of a running container (`docker pause`/`unpause`); its
    /// memory and ports are kept.
    fn set_paused(&self, name: &str, paused: bool) -> Result<(), Error>;
    /// Give a container another name (running or not); [`Error::NameTaken`] when a container
    /// has that name already.
    fn rename_container(&self, name: &str, to: &str) -> Result<(), Error>;
    /// Remove a container, running or not, with its anonymous volumes (named ones stay).
    fn remove_container(&self, name: &str) -> Result<(), Error>;
    /// Write the entries of a tar archive into a container's filesystem at `/` (`docker
    /// cp`), with the owners, modes and times the archive gives.
    fn put_files(&self, name: &str, archive: &[u8]) -> Result<(), Error>;
    /// Send a signal (`SIGUSR1`, `USR1`, …) to a running container's main process.
    fn signal_container(&self, name: &str, signal: &str) -> Result<(), Error>;
    /// A container by name or ID, if it exists.
    fn container(&self, name: &str) -> Result<Option<ContainerInfo>, Error>;
    /// Every container (running or not) carrying the label `label`.
    fn containers(&self, label: &str) -> Result<Vec<ContainerInfo>, Error>;
    /// Send a container's output to `sink`, line by line, stdout and stderr as they come;
    /// with `follow`, until the container stops or `sink` says to break.
    fn logs(
        &self,
        name: &str,
        options: LogOptions,
        sink: &mut dyn FnMut(LogLine) -> ControlFlow<()>,
    ) -> Result<(), Error>;
    /// Run a command in a running container and collect its output.
    fn exec(&self, name: &str, command: &[&str]) -> Result<ExecOutput, Error>;
    /// Run a command in a running container, `stdin` (when given) copied to its standard
    /// input and then closed (EOF), its standard output copied to `stdout` as it comes, never
    /// held whole; its standard error is collected (its last [`MAX_EXEC_STDERR`] bytes).
    /// Environment variables of `exec.env` are added for this command only (so a password
    /// never appears in a process list).
    ///
    /// Returns once the command has ended, or at once when `stdout` or `stdin` fails
    /// ([`Error::Stream`]); a command that ends without reading all of `stdin` is not fed the
    /// rest. Docker cannot stop a command it runs this way: one whose output can no longer
    /// be delivered runs on, its output discarded, until it ends or its container stops.
    fn exec_stream(
        &self,
        name: &str,
        exec: &Exec,
        stdin: Option<&mut (dyn std::io::Read + Send)>,
        stdout: &mut (dyn std::io::Write + Send),
    ) -> Result<ExecStatus, Error>;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the Docker daemon at `{endpoint}`: {reason}")]
    Connect {
        endpoint: String,
        /// The deepest cause (`Connection refused`, `Permission denied`, …).
        reason: String,
        /// The socket is there but this user may not use it.
        denied: bool,
    },
    #[error("`DOCKER_HOST={endpoint}` (or `DOCKER_TLS_VERIFY`) asks for TLS or SSH, which nua does not speak yet")]
    UnsupportedHost { endpoint: String },
    #[error("cannot read `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Docker refused the image `{}`: {message}", path.display())]
    LoadRefused { path: PathBuf, message: String },
    #[error("`{}` is not a valid image; nothing was loaded", path.display())]
    NotAnImage {
        path: PathBuf,
        #[source]
        source: nua_oci::Error,
    },
    #[error(
        "Docker gave `{tag}` the image ID {actual}, but `{}` has the config {expected}",
        path.display()
    )]
    IdMismatch {
        path: PathBuf,
        tag: String,
        expected: String,
        actual: String,
    },
    #[error(
        "Docker reports other layers for `{tag}` than the config of `{}` lists",
        path.display()
    )]
    LayersMismatch { path: PathBuf, tag: String },
    #[error("Docker loaded `{}` but named no image", path.display())]
    NothingLoaded { path: PathBuf },
    #[error("the host port {port} is already in use")]
    PortTaken { port: u16 },
    #[error("there is no container `{name}`")]
    NoSuchContainer { name: String },
    #[error("there is no Swarm service `{name}`")]
    NoSuchService { name: String },
    #[error("a container named `{name}` already exists")]
    NameTaken { name: String },
    /// Docker refuses to remove it: something uses it (a service, a secret's service).
    #[error("{what} is in use")]
    InUse { what: String },
    #[error("there is no image `{reference}` in Docker")]
    NoSuchImage { reference: String },
    /// The output of a command run with [`Engine::exec_stream`] could not be written (its
    /// consumer is gone), or its input could not be read.
    #[error(
        "cannot {} `{program}` run in the container `{container}`",
        if *input { "read the input for" } else { "write the output of" }
    )]
    Stream {
        container: String,
        /// The program run (the command's first word).
        program: String,
        /// Reading the input failed, not writing the output.
        input: bool,
        #[source]
        source: std::io::Error,
    },
    #[error("the Docker API call `{call}` failed")]
    Api {
        call: &'static str,
        #[source]
        source: bollard::errors::Error,
    },
}
