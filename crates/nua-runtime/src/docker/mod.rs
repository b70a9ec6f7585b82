//! [`Engine`] on Docker Engine through bollard, over `DOCKER_HOST` (`unix://` or `tcp://`) or
//! the default socket. Docker 20.10 (API 1.41) and newer answer: the version is negotiated,
//! and bollard 0.19 sends requests without a version prefix, so each daemon answers in its
//! own API version, whose fields this module reads only where 1.41 has them too.

mod containers;
mod exec;
mod output;
mod storage;
mod swarm;

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::query_parameters as query;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use tokio::runtime::Runtime;

use super::load::{describe_image, diff_ids, thin_archive, verify_image, ArchivePlan};
use super::types::*;
use super::{Engine, Error};

/// Docker Engine, through its API socket.
pub struct Docker {
    client: bollard::Docker,
    runtime: Runtime,
}

/// The largest file [`Engine::read_image_file`] returns (a nua-config.json is a few kB).
const MAX_FILE: u64 = 4 * 1024 * 1024;
/// How long the daemon has to answer the first ping.
/// What a load may send again rather than ask Docker about every image it has: the layers
/// of an image that its previous version under the same name lacks, up to this many bytes.
const SMALL_REST: u64 = 4 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long any other request may wait for its answer (a load of gigabytes, a stop with a
/// long grace period).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(6 * 60 * 60);

fn api(call: &'static str) -> impl FnOnce(BollardError) -> Error {
    move |source| Error::Api { call, source }
}

/// The status code of an error the daemon answered with.
fn status(err: &BollardError) -> Option<u16> {
    match err {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

fn message(err: &BollardError) -> String {
    match err {
        BollardError::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

impl Docker {
    /// Connect and negotiate the API version; fails within seconds when no daemon answers.
    pub fn connect() -> Result<Self, Error> {
        let endpoint = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned());
        // bollard is built without TLS and SSH: say so rather than fail to connect, or talk
        // plain HTTP to a daemon that expects TLS.
        let tls = std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty());
        if endpoint.starts_with("ssh://") || endpoint.starts_with("https://") || tls {
            return Err(Error::UnsupportedHost { endpoint });
        }
        // Two threads use the engine at once (one follows logs while the other watches
        // health); with a worker of its own, neither waits for the other's I/O.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|source| Error::Io {
                path: "tokio runtime".into(),
                source,
            })?;
        let connect = |source: BollardError| {
            // The chain of a connection error is three wrappers deep; the last cause is the
            // one that says something (`No such file or directory`, `Permission denied`).
            let mut cause: &dyn std::error::Error = &source;
            while let Some(next) = cause.source() {
                cause = next;
            }
            let denied = cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied);
            Error::Connect {
                endpoint: endpoint.clone(),
                reason: cause.to_string(),
                denied,
            }
        };
        let client = bollard::Docker::connect_with_defaults().map_err(connect)?;
        let client = runtime
            .block_on(async {
                let quick = client.clone().with_timeout(CONNECT_TIMEOUT);
                quick.ping().await?;
                client.negotiate_version().await
            })
            .map_err(connect)?;
        // bollard gives up on a request after 2 minutes without response headers by
        // default; Docker answers a load only once it has registered every layer, and a stop
        // once the app is down.
        let client = client.with_timeout(REQUEST_TIMEOUT);
        Ok(Self { client, runtime })
    }

    /// The ChainIDs of the layer stacks the engine holds that matter for an image of config
    /// `image_id`: all of its own when the engine has it, else those of every top-level
    /// image, every prefix (an intermediate image's layers are a prefix of its child's).
    async fn chains(
        &self,
        info: &nua_oci::ImageInfo,
        tags: &[String],
    ) -> Result<HashSet<String>, Error> {
        let image_id = info.config_descriptor.digest.to_string();
        // Loaded already (a no-op rebuild): no need to look at every other image.
        if let Ok(image) = self.client.inspect_image(&image_id).await {
            let layers = image.root_fs.and_then(|r| r.layers).unwrap_or_default();
            return Ok(super::chain_ids(&layers).into_iter().collect());
        }
        // The image its names give now, usually its previous version: when it has all but a
        // few small layers, sending those costs less than asking about every image.
        let mut present = HashSet::new();
        for tag in tags {
            if let Ok(image) = self.client.inspect_image(tag).await {
                let layers = image.root_fs.and_then(|r| r.layers).unwrap_or_default();
                present.extend(super::chain_ids(&layers));
            }
        }
        let wanted = super::chain_ids(&diff_ids(info));
        let missing: u64 = info
            .layers
            .iter()
            .zip(&wanted)
            .filter(|(_, chain)| !present.contains(*chain))
            .map(|(layer, _)| layer.size)
            .sum();
        if !present.is_empty() && missing <= SMALL_REST {
            return Ok(present);
        }
        let images = self
            .client
            .list_images(Some(query::ListImagesOptionsBuilder::default().build()))
            .await
            .map_err(api("GET /images/json"))?;
        let inspected: Vec<_> = futures_util::stream::iter(images)
            .map(|image| async move { self.client.inspect_image(&image.id).await })
            .buffer_unordered(8)
            .collect()
            .await;
        let mut chains = HashSet::new();
        for image in inspected {
            // An image removed since the listing is simply not there.
            let Ok(image) = image else { continue };
            let layers = image.root_fs.and_then(|r| r.layers).unwrap_or_default();
            chains.extend(super::chain_ids(&layers));
        }
        Ok(chains)
    }

    /// Send an archive body to `POST /images/load`; what Docker says it loaded: tags, or
    /// image IDs for an image without a name.
    async fn post_load(
        &self,
        path: &Path,
        body: impl futures_util::Stream<Item = Bytes> + Send + 'static,
    ) -> Result<Vec<String>, Error> {
        let refused = |message| Error::LoadRefused {
            path: path.to_path_buf(),
            message,
        };
        let options = query::ImportImageOptionsBuilder::default()
            .quiet(true)
            .build();
        // Docker answers 200 and reports a refusal inside the stream of messages, which
        // bollard turns into `DockerStreamError`.
        let messages: Vec<_> = self
            .client
            .import_image_stream(options, body, None)
            .try_collect()
            .await
            .map_err(|source| match source {
                BollardError::DockerResponseServerError { message, .. } => refused(message),
                BollardError::DockerStreamError { error } => refused(error),
                source => Error::Api {
                    call: "POST /images/load",
                    source,
                },
            })?;
        let mut loaded = Vec::new();
        for message in messages {
            if let Some(error) = message.error {
                return Err(refused(error));
            }
            let text = message.stream.unwrap_or_default();
            let text = text.trim();
            if let Some(name) = text
                .strip_prefix("Loaded image: ")
                .or_else(|| text.strip_prefix("Loaded image ID: "))
            {
                loaded.push(name.to_owned());
            }
        }
        Ok(loaded)
    }

    /// Stream the archive of `plan`, written by a thread from `archive`, into the engine.
    fn send(
        &self,
        path: &Path,
        archive: &nua_oci::ImageArchive,
        plan: &ArchivePlan,
    ) -> Result<(Vec<String>, u64), Error> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        std::thread::scope(|scope| {
            let writer = scope.spawn(move || {
                let out = std::io::BufWriter::with_capacity(1 << 20, ChannelWriter(tx));
                thin_archive(archive, plan, out)
            });
            let tags = self.runtime.block_on(async {
                let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
                self.post_load(path, body).await
            });
            let written = writer.join().expect("the archive writer does not panic");
            match (tags, written) {
                // When Docker refuses, it closes the connection and the writer fails too:
                // Docker's reason is the one to give.
                (Err(err), _) => Err(err),
                (Ok(_), Err(source)) => Err(Error::NotAnImage {
                    path: path.to_path_buf(),
                    source,
                }),
                (Ok(tags), Ok(bytes)) => Ok((tags, bytes)),
            }
        })
    }

    /// Check that the engine's image under `tag` is the one of `info`.
    fn check_loaded(
        &self,
        path: &Path,
        tags: &[String],
        info: &nua_oci::ImageInfo,
    ) -> Result<String, Error> {
        let first = tags.first().ok_or_else(|| Error::NothingLoaded {
            path: path.to_path_buf(),
        })?;
        let inspect = self
            .runtime
            .block_on(self.client.inspect_image(first))
            .map_err(api("GET /images/{name}/json"))?;
        let image_id = inspect.id.unwrap_or_default();
        let expected = info.config_descriptor.digest.to_string();
        // Docker's own image store names an image by its config; its containerd store, by
        // its manifest.
        if image_id != expected && image_id != info.manifest_descriptor.digest.to_string() {
            return Err(Error::IdMismatch {
                path: path.to_path_buf(),
                tag: first.clone(),
                expected,
                actual: image_id,
            });
        }
        let layers = inspect.root_fs.and_then(|r| r.layers).unwrap_or_default();
        if layers != diff_ids(info) {
            return Err(Error::LayersMismatch {
                path: path.to_path_buf(),
                tag: first.clone(),
            });
        }
        Ok(image_id)
    }
}

/// A writer whose bytes go, chunk by chunk, into the body of a request.
struct ChannelWriter(tokio::sync::mpsc::Sender<Bytes>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| std::io::Error::other("the engine closed the connection"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Engine for Docker {
    fn load_image(&self, path: &Path, options: LoadOptions) -> Result<Loaded, Error> {
        let (archive, info) = describe_image(path)?;
        let tags: Vec<String> = info.names.iter().map(|n| docker_tag(n)).collect();
        // Every layer is checked before anything is sent; meanwhile, ask the engine which
        // layers it has.
        let (verified, present) = std::thread::scope(|scope| {
            let verified = scope.spawn(|| match options.verify {
                true => verify_image(&archive, path),
                false => Ok(()),
            });
            let present = match options.thin {
                true => self.runtime.block_on(self.chains(&info, &tags)),
                false => Ok(HashSet::new()),
            };
            (verified.join().expect("verifying does not panic"), present)
        });
        verified?;
        let present = present?;
        // Even a full load sends an archive written from what was checked, never the file
        // as it is: Docker reads `manifest.json`, which a hostile tarball could make say
        // other things than the OCI index that was checked.
        let everything = ArchivePlan::new(info.clone(), tags.clone(), &HashSet::new());
        let full = || self.send(path, &archive, &everything);
        let layers = info.layers.len();
        let (tags, bytes_sent, layers_sent, fell_back) = if options.thin {
            let plan = ArchivePlan::new(info.clone(), tags, &present);
            match self.send(path, &archive, &plan) {
                Ok((tags, bytes)) => (tags, bytes, plan.layers_sent().count(), None),
                // The engine could not use the layers it has (another image store, or a
                // layer removed since it was listed): send everything.
                Err(Error::LoadRefused { message, .. }) => {
                    let (tags, bytes) = full()?;
                    (tags, bytes, layers, Some(message))
                }
                Err(err) => return Err(err),
            }
        } else {
            let (tags, bytes) = full()?;
            (tags, bytes, layers, None)
        };
        let image_id = self.check_loaded(path, &tags, &info)?;
        Ok(Loaded {
            tags,
            image_id,
            bytes_sent,
            layers,
            layers_sent,
            fell_back,
        })
    }

    fn image(&self, reference: &str) -> Result<Option<ImageDetails>, Error> {
        let inspected = match self.runtime.block_on(self.client.inspect_image(reference)) {
            Ok(image) => image,
            Err(e) if status(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(api("GET /images/{name}/json")(e)),
        };
        let config = inspected.config.unwrap_or_default();
        let mut exposed_ports: Vec<String> = config
            .exposed_ports
            .unwrap_or_default()
            .into_keys()
            .collect();
        exposed_ports.sort();
        let health_check = config
            .healthcheck
            .and_then(|h| h.test)
            .filter(|test| !test.is_empty() && test[0] != "NONE");
        Ok(Some(ImageDetails {
            id: inspected.id.unwrap_or_default(),
            tags: inspected.repo_tags.unwrap_or_default(),
            diff_ids: inspected.root_fs.and_then(|r| r.layers).unwrap_or_default(),
            exposed_ports,
            env: config.env.unwrap_or_default(),
            labels: config.labels.unwrap_or_default().into_iter().collect(),
            health_check,
            entrypoint: config.entrypoint.unwrap_or_default(),
            cmd: config.cmd.unwrap_or_default(),
        }))
    }

    fn read_image_file(&self, image: &str, path: &str) -> Result<Option<Vec<u8>>, Error> {
        self.image_file(image, path)
    }

    fn remove_image(&self, reference: &str) -> Result<(), Error> {
        match self.runtime.block_on(self.client.remove_image(
            reference,
            None::<query::RemoveImageOptions>,
            None,
        )) {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(404) => Ok(()),
            Err(e) => Err(api("DELETE /images/{name}")(e)),
        }
    }

    fn create_volume(&self, spec: &VolumeSpec) -> Result<(), Error> {
        self.volume(spec)
    }

    fn volumes(&self, label: &str, value: &str) -> Result<Vec<String>, Error> {
        self.volumes_with(label, value)
    }

    fn remove_volume(&self, name: &str) -> Result<(), Error> {
        self.delete_volume(name)
    }

    fn create_network(&self, name: &str, labels: &Labels) -> Result<(), Error> {
        self.network(name, labels)
    }

    fn remove_network(&self, name: &str) -> Result<(), Error> {
        self.delete_network(name)
    }

    fn create_container(&self, spec: &ContainerSpec) -> Result<String, Error> {
        self.create(spec)
    }

    fn start_container(&self, name: &str) -> Result<(), Error> {
        self.start(name)
    }

    fn stop_container(&self, name: &str, timeout: Duration) -> Result<(), Error> {
        self.stop(name, timeout)
    }

    fn remove_container(&self, name: &str) -> Result<(), Error> {
        self.remove(name)
    }

    fn rename_container(&self, name: &str, to: &str) -> Result<(), Error> {
        self.rename(name, to)
    }

    fn put_files(&self, name: &str, archive: &[u8]) -> Result<(), Error> {
        self.upload(name, archive)
    }

    fn signal_container(&self, name: &str, signal: &str) -> Result<(), Error> {
        self.kill(name, signal)
    }

    fn set_paused(&self, name: &str, paused: bool) -> Result<(), Error> {
        self.pause(name, paused)
    }

    fn container(&self, name: &str) -> Result<Option<ContainerInfo>, Error> {
        self.inspect(name)
    }

    fn containers(&self, label: &str) -> Result<Vec<ContainerInfo>, Error> {
        self.list(label)
    }

    fn logs(
        &self,
        name: &str,
        options: LogOptions,
        sink: &mut dyn FnMut(LogLine) -> ControlFlow<()>,
    ) -> Result<(), Error> {
        self.follow_logs(name, options, sink)
    }

    fn exec(&self, name: &str, command: &[&str]) -> Result<ExecOutput, Error> {
        self.run_exec(name, command)
    }

    fn exec_stream(
        &self,
        name: &str,
        exec: &Exec,
        stdin: Option<&mut (dyn std::io::Read + Send)>,
        stdout: &mut (dyn std::io::Write + Send),
    ) -> Result<ExecStatus, Error> {
        self.stream_exec(name, exec, stdin, stdout)
    }
}

/// The name Docker expects in `RepoTags`: `docker.io/library/x:1` is `x:1` to it.
fn docker_tag(name: &str) -> String {
    name.strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name)
        .to_owned()
}
