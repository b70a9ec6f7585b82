//! [`Engine`] on Docker Engine through bollard, over `DOCKER_HOST` or the default socket, with
//! the API version negotiated so that Docker 20.10 (API 1.41) and newer all answer.

mod containers;

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

pub struct Docker {
    client: bollard::Docker,
    runtime: Runtime,
}

/// The largest file [`Engine::read_image_file`] returns (a nua-config.json is a few kB).
const MAX_FILE: u64 = 4 * 1024 * 1024;

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
    /// Connect and negotiate the API version; fails at once when no daemon answers.
    pub fn connect() -> Result<Self, Error> {
        let endpoint = std::env::var("DOCKER_HOST")
            .unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned());
        let runtime = tokio::runtime::Builder::new_current_thread()
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
                let client = client.negotiate_version().await?;
                client.ping().await?;
                Ok(client)
            })
            .map_err(connect)?;
        Ok(Self { client, runtime })
    }

    /// The ChainIDs of the layer stacks the engine holds that matter for an image of config
    /// `image_id`: all of its own when the engine has it, else those of every top-level
    /// image, every prefix (an intermediate image's layers are a prefix of its child's).
    async fn chains(&self, image_id: &str) -> Result<HashSet<String>, Error> {
        // Loaded already (a no-op rebuild): no need to look at every other image.
        if let Ok(image) = self.client.inspect_image(image_id).await {
            let layers = image.root_fs.and_then(|r| r.layers).unwrap_or_default();
            return Ok(super::chain_ids(&layers).into_iter().collect());
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

    /// Send an archive body to `POST /images/load`; the tags Docker says it loaded.
    async fn post_load(
        &self,
        path: &Path,
        body: impl futures_util::Stream<Item = Bytes> + Send + 'static,
    ) -> Result<Vec<String>, Error> {
        let options = query::ImportImageOptionsBuilder::default()
            .quiet(true)
            .build();
        let messages: Vec<_> = self
            .client
            .import_image_stream(options, body, None)
            .try_collect()
            .await
            .map_err(|source| match source {
                BollardError::DockerResponseServerError { message, .. } => Error::LoadRefused {
                    path: path.to_path_buf(),
                    message,
                },
                source => Error::Api {
                    call: "POST /images/load",
                    source,
                },
            })?;
        let mut tags = Vec::new();
        for message in messages {
            if let Some(error) = message.error {
                return Err(Error::LoadRefused {
                    path: path.to_path_buf(),
                    message: error,
                });
            }
            let text = message.stream.unwrap_or_default();
            if let Some(tag) = text.trim().strip_prefix("Loaded image: ") {
                tags.push(tag.to_owned());
            }
        }
        Ok(tags)
    }

    /// Stream a thin archive, written by a thread from `archive`, into the engine.
    fn load_thin(
        &self,
        path: &Path,
        archive: &crate::oci::ImageArchive,
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
                // A writer error ends the body early; say why rather than what Docker saw.
                (_, Err(source)) => Err(Error::NotAnImage {
                    path: path.to_path_buf(),
                    source,
                }),
                (Err(err), _) => Err(err),
                (Ok(tags), Ok(bytes)) => Ok((tags, bytes)),
            }
        })
    }

    /// Stream a tarball as it is into the engine.
    fn load_file(&self, path: &Path) -> Result<(Vec<String>, u64), Error> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        self.runtime.block_on(async {
            let file = tokio::fs::File::open(path).await.map_err(io)?;
            let size = file.metadata().await.map_err(io)?.len();
            // A read error ends the body early, and the engine refuses a truncated archive.
            let body = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20)
                .take_while(|chunk| futures_util::future::ready(chunk.is_ok()))
                .map(|chunk| chunk.unwrap_or_else(|_| Bytes::new()));
            Ok((self.post_load(path, body).await?, size))
        })
    }

    /// Check that the engine's image under `tag` is the one of `info`.
    fn check_loaded(
        &self,
        path: &Path,
        tags: &[String],
        info: &crate::oci::ImageInfo,
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
        if image_id != expected {
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
        // Every layer is checked before anything is sent; meanwhile, ask the engine which
        // layers it has.
        let (verified, present) = std::thread::scope(|scope| {
            let verified = scope.spawn(|| match options.verify {
                true => verify_image(&archive, path),
                false => Ok(()),
            });
            let present = match options.thin {
                true => {
                    let id = info.config_descriptor.digest.to_string();
                    self.runtime.block_on(self.chains(&id))
                }
                false => Ok(HashSet::new()),
            };
            (verified.join().expect("verifying does not panic"), present)
        });
        verified?;
        let present = present?;
        let tags: Vec<String> = info.names.iter().map(|n| docker_tag(n)).collect();
        let everything = ArchivePlan::new(info.clone(), tags.clone(), &HashSet::new());
        // Send everything, as the file itself when it is one (an engine with its own image
        // store reads the OCI index of it rather than `manifest.json`).
        let full = || match path.is_file() {
            true => self.load_file(path),
            false => self.load_thin(path, &archive, &everything),
        };
        let layers = info.layers.len();
        let (tags, bytes_sent, layers_sent, fell_back) = if options.thin {
            let plan = ArchivePlan::new(info.clone(), tags, &present);
            match self.load_thin(path, &archive, &plan) {
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
        let has_healthcheck = config.healthcheck.is_some_and(|h| {
            let test = h.test.unwrap_or_default();
            !test.is_empty() && test[0] != "NONE"
        });
        Ok(Some(ImageDetails {
            id: inspected.id.unwrap_or_default(),
            tags: inspected.repo_tags.unwrap_or_default(),
            diff_ids: inspected.root_fs.and_then(|r| r.layers).unwrap_or_default(),
            exposed_ports,
            env: config.env.unwrap_or_default(),
            labels: config.labels.unwrap_or_default().into_iter().collect(),
            has_healthcheck,
        }))
    }

    fn read_image_file(&self, image: &str, path: &str) -> Result<Option<Vec<u8>>, Error> {
        self.image_file(image, path)
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
}

/// The name Docker expects in `RepoTags`: `docker.io/library/x:1` is `x:1` to it.
fn docker_tag(name: &str) -> String {
    name.strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name)
        .to_owned()
}
