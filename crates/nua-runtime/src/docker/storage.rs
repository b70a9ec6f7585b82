//! Volumes, networks, and the files of an image Docker has.

use std::collections::HashMap;

use bollard::models;
use bollard::query_parameters as query;
use futures_util::TryStreamExt;

use super::{api, status, Docker, MAX_FILE};
use crate::types::*;
use crate::Error;

impl Docker {
    pub(super) fn volume(&self, spec: &VolumeSpec) -> Result<(), Error> {
        let options = models::VolumeCreateOptions {
            name: Some(spec.name.clone()),
            driver: Some(spec.driver.clone().unwrap_or_else(|| "local".to_owned())),
            driver_opts: Some(spec.options.clone().into_iter().collect()),
            labels: Some(spec.labels.clone().into_iter().collect()),
            ..Default::default()
        };
        // Creating a volume that exists returns it unchanged.
        self.runtime
            .block_on(self.client.create_volume(options))
            .map(|_| ())
            .map_err(api("POST /volumes/create"))
    }

    pub(super) fn volumes_with(&self, label: &str, value: &str) -> Result<Vec<String>, Error> {
        let filters = HashMap::from([("label".to_owned(), vec![format!("{label}={value}")])]);
        let options = query::ListVolumesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let listed = self
            .runtime
            .block_on(self.client.list_volumes(Some(options)))
            .map_err(api("GET /volumes"))?;
        let mut names: Vec<String> = listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect();
        names.sort();
        Ok(names)
    }

    pub(super) fn delete_volume(&self, name: &str) -> Result<(), Error> {
        match self.runtime.block_on(
            self.client
                .remove_volume(name, None::<query::RemoveVolumeOptions>),
        ) {
            Err(e) if status(&e) == Some(404) => Ok(()),
            other => other.map_err(api("DELETE /volumes/{name}")),
        }
    }

    pub(super) fn network(&self, name: &str, labels: &Labels) -> Result<(), Error> {
        self.network_of(name, labels, "bridge")
    }

    /// Create a network of `driver` (an `overlay` one attachable by containers), unless one
    /// of that name exists.
    pub(super) fn network_of(
        &self,
        name: &str,
        labels: &Labels,
        driver: &str,
    ) -> Result<(), Error> {
        let existing = self.runtime.block_on(
            self.client
                .inspect_network(name, None::<query::InspectNetworkOptions>),
        );
        match existing {
            Ok(_) => return Ok(()),
            Err(e) if status(&e) == Some(404) => {}
            Err(e) => return Err(api("GET /networks/{id}")(e)),
        }
        let request = models::NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some(driver.to_owned()),
            attachable: (driver == "overlay").then_some(true),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        match self.runtime.block_on(self.client.create_network(request)) {
            // Created by someone else in between.
            Err(e) if status(&e) == Some(409) => Ok(()),
            other => other.map(|_| ()).map_err(api("POST /networks/create")),
        }
    }

    pub(super) fn delete_network(&self, name: &str) -> Result<(), Error> {
        match self.runtime.block_on(self.client.remove_network(name)) {
            Err(e) if status(&e) == Some(404) => Ok(()),
            other => other.map_err(api("DELETE /networks/{id}")),
        }
    }

    pub(super) fn image_file(&self, image: &str, path: &str) -> Result<Option<Vec<u8>>, Error> {
        // A container that is created and never started gives access to the image's files.
        let spec = ContainerSpec {
            name: format!("nua-read-{}-{}", std::process::id(), unique()),
            image: image.to_owned(),
            ..ContainerSpec::default()
        };
        let id = self.create(&spec)?;
        let read = self.runtime.block_on(async {
            let options = query::DownloadFromContainerOptionsBuilder::default()
                .path(path)
                .build();
            let mut body = Vec::new();
            let mut stream = self.client.download_from_container(&id, Some(options));
            while let Some(chunk) = stream.try_next().await.transpose() {
                match chunk {
                    Ok(bytes) => body.extend_from_slice(&bytes),
                    Err(e) if status(&e) == Some(404) => return Ok(None),
                    Err(e) => return Err(api("GET /containers/{id}/archive")(e)),
                }
                if body.len() as u64 > MAX_FILE + 64 * 1024 {
                    return Ok(None);
                }
            }
            Ok(Some(body))
        });
        let removed = self.remove(&id);
        let Some(archive) = read? else {
            return Ok(None);
        };
        removed?;
        first_file(&archive).map_err(|source| Error::Io {
            path: format!("{image}:{path}").into(),
            source,
        })
    }
}

/// The content of the first regular file of a tar archive.
fn first_file(archive: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
    let mut tar = tar::Archive::new(archive);
    for entry in tar.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type().is_file() && entry.size() <= MAX_FILE {
            let mut content = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut content)?;
            return Ok(Some(content));
        }
    }
    Ok(None)
}

fn unique() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
