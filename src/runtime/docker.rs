//! [`Engine`] on Docker Engine through bollard, over `DOCKER_HOST` or the default socket, with
//! the API version negotiated so that Docker 20.10 (API 1.41) and newer all answer.

use std::path::Path;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use tokio::runtime::Runtime;

use super::{Engine, Error, Loaded};

pub struct Docker {
    client: bollard::Docker,
    runtime: Runtime,
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
        let connect = |source| Error::Connect {
            endpoint: endpoint.clone(),
            source,
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
}

impl Engine for Docker {
    fn load_image(&self, tarball: &Path) -> Result<Loaded, Error> {
        let io = |source| Error::Io {
            path: tarball.to_path_buf(),
            source,
        };
        // Refuse a truncated or tampered archive before the engine sees any of it.
        let image = crate::oci::ImageArchive::open(tarball)
            .and_then(|archive| archive.image(crate::oci::ReadOptions::default()))
            .map_err(|source| Error::NotAnImage {
                path: tarball.to_path_buf(),
                source,
            })?;
        let expected = image.config_descriptor.digest.to_string();
        self.runtime.block_on(async {
            let file = tokio::fs::File::open(tarball).await.map_err(io)?;
            // The body streams from the file; a read error ends the body early, and the
            // engine then refuses a truncated archive.
            let body = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20)
                .take_while(|chunk| futures_util::future::ready(chunk.is_ok()))
                .map(|chunk| chunk.unwrap_or_else(|_| Bytes::new()));
            let options = bollard::query_parameters::ImportImageOptionsBuilder::default()
                .quiet(true)
                .build();
            let messages: Vec<_> = self
                .client
                .import_image_stream(options, body, None)
                .try_collect()
                .await
                .map_err(|source| Error::Api {
                    call: "POST /images/load",
                    source,
                })?;
            let mut tags = Vec::new();
            for message in messages {
                if let Some(error) = message.error {
                    return Err(Error::LoadRefused {
                        path: tarball.to_path_buf(),
                        message: error,
                    });
                }
                let text = message.stream.unwrap_or_default();
                if let Some(tag) = text.trim().strip_prefix("Loaded image: ") {
                    tags.push(tag.to_owned());
                }
            }
            let first = tags.first().ok_or_else(|| Error::NothingLoaded {
                path: tarball.to_path_buf(),
            })?;
            let inspect = self
                .client
                .inspect_image(first)
                .await
                .map_err(|source| Error::Api {
                    call: "GET /images/{name}/json",
                    source,
                })?;
            let image_id = inspect.id.unwrap_or_default();
            if image_id != expected {
                return Err(Error::IdMismatch {
                    path: tarball.to_path_buf(),
                    tag: first.clone(),
                    expected,
                    actual: image_id,
                });
            }
            let bytes_sent = tokio::fs::metadata(tarball).await.map_err(io)?.len();
            Ok(Loaded {
                image_id,
                tags,
                bytes_sent,
            })
        })
    }
}
