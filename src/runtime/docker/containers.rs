//! Containers, volumes, networks, logs and exec on Docker: bollard's models to ours and back.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models;
use bollard::query_parameters as query;
use futures_util::{StreamExt, TryStreamExt};

use super::{api, message, status, Docker, MAX_FILE};
use crate::runtime::types::*;
use crate::runtime::Error;

impl Docker {
    pub(super) fn create(&self, spec: &ContainerSpec) -> Result<String, Error> {
        let mut bindings: HashMap<String, Option<Vec<models::PortBinding>>> = HashMap::new();
        let mut exposed: HashMap<String, HashMap<(), ()>> = HashMap::new();
        for port in &spec.ports {
            let key = format!("{}/{}", port.container, port.protocol.as_str());
            exposed.insert(key.clone(), HashMap::new());
            bindings
                .entry(key)
                .or_default()
                .get_or_insert_with(Vec::new)
                .push(models::PortBinding {
                    host_ip: Some(port.host_ip.to_string()),
                    host_port: Some(port.host.to_string()),
                });
        }
        let mounts = spec.mounts.iter().map(mount).collect();
        let body = models::ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(spec.env.clone()),
            exposed_ports: Some(exposed),
            labels: Some(spec.labels.clone().into_iter().collect()),
            host_config: Some(models::HostConfig {
                port_bindings: Some(bindings),
                mounts: Some(mounts),
                network_mode: spec.network.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = query::CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        self.runtime
            .block_on(self.client.create_container(Some(options), body))
            .map(|created| created.id)
            .map_err(|source| match status(&source) {
                Some(409) => Error::NameTaken {
                    name: spec.name.clone(),
                },
                Some(404) => Error::NoSuchImage {
                    reference: spec.image.clone(),
                },
                _ => Error::Api {
                    call: "POST /containers/create",
                    source,
                },
            })
    }

    pub(super) fn start(&self, name: &str) -> Result<(), Error> {
        let started = self.runtime.block_on(
            self.client
                .start_container(name, None::<query::StartContainerOptions>),
        );
        started.map_err(|source| {
            let text = message(&source);
            if let Some(port) = taken_port(&text) {
                return Error::PortTaken { port };
            }
            not_found(name, source, "POST /containers/{id}/start")
        })
    }

    pub(super) fn stop(&self, name: &str, timeout: Duration) -> Result<(), Error> {
        let options = query::StopContainerOptionsBuilder::default()
            .t(i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX))
            .build();
        match self
            .runtime
            .block_on(self.client.stop_container(name, Some(options)))
        {
            // 304: already stopped.
            Err(e) if status(&e) == Some(304) => Ok(()),
            other => other.map_err(|e| not_found(name, e, "POST /containers/{id}/stop")),
        }
    }

    pub(super) fn remove(&self, name: &str) -> Result<(), Error> {
        let options = query::RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        self.runtime
            .block_on(self.client.remove_container(name, Some(options)))
            .map_err(|e| not_found(name, e, "DELETE /containers/{id}"))
    }

    pub(super) fn inspect(&self, name: &str) -> Result<Option<ContainerInfo>, Error> {
        let inspected = self.runtime.block_on(
            self.client
                .inspect_container(name, None::<query::InspectContainerOptions>),
        );
        match inspected {
            Ok(c) => Ok(Some(container_info(c))),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(api("GET /containers/{id}/json")(e)),
        }
    }

    pub(super) fn list(&self, label: &str) -> Result<Vec<ContainerInfo>, Error> {
        let filters = HashMap::from([("label".to_owned(), vec![label.to_owned()])]);
        let options = query::ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let summaries = self
            .runtime
            .block_on(self.client.list_containers(Some(options)))
            .map_err(api("GET /containers/json"))?;
        // The summary lacks health and exit codes: inspect each one.
        let mut containers = Vec::new();
        for summary in summaries {
            let Some(id) = summary.id else { continue };
            if let Some(info) = self.inspect(&id)? {
                containers.push(info);
            }
        }
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(containers)
    }

    pub(super) fn follow_logs(
        &self,
        name: &str,
        options: LogOptions,
        sink: &mut dyn FnMut(LogLine) -> ControlFlow<()>,
    ) -> Result<(), Error> {
        let tail = options.tail.map_or("all".to_owned(), |n| n.to_string());
        let query = query::LogsOptionsBuilder::default()
            .follow(options.follow)
            .stdout(true)
            .stderr(true)
            .tail(&tail)
            .build();
        self.runtime.block_on(async {
            let mut stream = self.client.logs(name, Some(query));
            let mut lines = Lines::default();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| not_found(name, e, "GET /containers/{id}/logs"))?;
                for line in lines.push(chunk) {
                    if sink(line).is_break() {
                        return Ok(());
                    }
                }
            }
            for line in lines.finish() {
                if sink(line).is_break() {
                    break;
                }
            }
            Ok(())
        })
    }

    pub(super) fn run_exec(&self, name: &str, command: &[&str]) -> Result<ExecOutput, Error> {
        self.runtime.block_on(async {
            let config = models::ExecConfig {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(command.iter().map(|s| (*s).to_owned()).collect()),
                ..Default::default()
            };
            let exec = self
                .client
                .create_exec(name, config)
                .await
                .map_err(|e| not_found(name, e, "POST /containers/{id}/exec"))?;
            let started = self
                .client
                .start_exec(&exec.id, None)
                .await
                .map_err(api("POST /exec/{id}/start"))?;
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            if let bollard::exec::StartExecResults::Attached { mut output, .. } = started {
                while let Some(chunk) = output.next().await {
                    match chunk.map_err(api("POST /exec/{id}/start"))? {
                        bollard::container::LogOutput::StdErr { message } => {
                            stderr.extend_from_slice(&message)
                        }
                        other => stdout.extend_from_slice(other.as_ref()),
                    }
                }
            }
            let inspected = self
                .client
                .inspect_exec(&exec.id)
                .await
                .map_err(api("GET /exec/{id}/json"))?;
            Ok(ExecOutput {
                exit_code: inspected.exit_code.unwrap_or(-1),
                stdout,
                stderr,
            })
        })
    }

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
            driver: Some("bridge".to_owned()),
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

fn not_found(name: &str, source: BollardError, call: &'static str) -> Error {
    if status(&source) == Some(404) {
        Error::NoSuchContainer {
            name: name.to_owned(),
        }
    } else {
        Error::Api { call, source }
    }
}

/// The host port a failed start names as busy: Docker says `Bind for 127.0.0.1:8000 failed:
/// port is already allocated` (its own reservation) or `listen tcp4 127.0.0.1:8000: bind:
/// address already in use` (someone else's socket).
fn taken_port(message: &str) -> Option<u16> {
    if !message.contains("port is already allocated") && !message.contains("address already in use")
    {
        return None;
    }
    let end = message
        .find(" failed: port is already allocated")
        .or_else(|| message.find(": bind: address already in use"))?;
    let digits = message[..end].rsplit(':').next()?;
    digits.parse().ok()
}

fn mount(mount: &Mount) -> models::Mount {
    match mount {
        Mount::Volume {
            name,
            target,
            read_only,
        } => models::Mount {
            typ: Some(models::MountTypeEnum::VOLUME),
            source: Some(name.clone()),
            target: Some(target.clone()),
            read_only: Some(*read_only),
            ..Default::default()
        },
        Mount::Bind {
            source,
            target,
            read_only,
        } => models::Mount {
            typ: Some(models::MountTypeEnum::BIND),
            source: Some(source.display().to_string()),
            target: Some(target.clone()),
            read_only: Some(*read_only),
            ..Default::default()
        },
        Mount::Tmpfs {
            target,
            size_bytes,
            mode,
        } => models::Mount {
            typ: Some(models::MountTypeEnum::TMPFS),
            target: Some(target.clone()),
            tmpfs_options: Some(models::MountTmpfsOptions {
                size_bytes: *size_bytes,
                mode: *mode,
                ..Default::default()
            }),
            ..Default::default()
        },
    }
}

fn container_info(c: models::ContainerInspectResponse) -> ContainerInfo {
    let state = c.state.unwrap_or_default();
    let status = match state.status {
        Some(models::ContainerStateStatusEnum::RUNNING) => State::Running,
        Some(models::ContainerStateStatusEnum::PAUSED) => State::Paused,
        Some(models::ContainerStateStatusEnum::RESTARTING) => State::Restarting,
        Some(models::ContainerStateStatusEnum::EXITED) => State::Exited,
        Some(
            models::ContainerStateStatusEnum::DEAD | models::ContainerStateStatusEnum::REMOVING,
        ) => State::Dead,
        _ => State::Created,
    };
    let health = state.health.and_then(|h| {
        let status = match h.status? {
            models::HealthStatusEnum::STARTING => HealthStatus::Starting,
            models::HealthStatusEnum::HEALTHY => HealthStatus::Healthy,
            models::HealthStatusEnum::UNHEALTHY => HealthStatus::Unhealthy,
            _ => return None,
        };
        let log = h
            .log
            .unwrap_or_default()
            .into_iter()
            .map(|r| CheckResult {
                exit_code: r.exit_code.unwrap_or(-1),
                output: r.output.unwrap_or_default(),
            })
            .collect();
        Some(Health { status, log })
    });
    let config = c.config.unwrap_or_default();
    let mut ports = Vec::new();
    let bindings = c
        .host_config
        .and_then(|h| h.port_bindings)
        .unwrap_or_default();
    for (key, list) in bindings {
        let Some((container, protocol)) = Protocol::parse_port(&key) else {
            continue;
        };
        for binding in list.unwrap_or_default() {
            let host_ip = binding
                .host_ip
                .and_then(|ip| ip.parse().ok())
                .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
            if let Some(host) = binding.host_port.and_then(|p| p.parse().ok()) {
                ports.push(PortBinding {
                    container,
                    protocol,
                    host_ip,
                    host,
                });
            }
        }
    }
    ports.sort_by_key(|p| (p.container, p.protocol, p.host));
    ContainerInfo {
        id: c.id.unwrap_or_default(),
        name: c
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        image: config.image.unwrap_or_default(),
        exit_code: (status == State::Exited || status == State::Dead)
            .then_some(state.exit_code)
            .flatten(),
        state: status,
        health,
        ports,
        labels: config.labels.unwrap_or_default().into_iter().collect(),
    }
}

/// The longest piece of output held while waiting for the end of its line.
const MAX_LINE: usize = 64 * 1024;

/// Log chunks cut into lines, each stream apart (a frame may hold part of a line).
#[derive(Default)]
struct Lines {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Lines {
    fn push(&mut self, chunk: bollard::container::LogOutput) -> Vec<LogLine> {
        use bollard::container::LogOutput;
        let (stream, buffer, bytes) = match &chunk {
            LogOutput::StdErr { message } => (Stream::Stderr, &mut self.stderr, message),
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                (Stream::Stdout, &mut self.stdout, message)
            }
            LogOutput::StdIn { .. } => return Vec::new(),
        };
        buffer.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            lines.push(LogLine {
                stream,
                text: String::from_utf8_lossy(&line[..end])
                    .trim_end_matches('\r')
                    .to_owned(),
            });
        }
        // Output that never ends a line (progress drawn with `\r`, binary data) is passed
        // on in pieces rather than held without bound.
        if buffer.len() >= MAX_LINE {
            let piece: Vec<u8> = std::mem::take(buffer);
            lines.push(LogLine {
                stream,
                text: String::from_utf8_lossy(&piece).into_owned(),
            });
        }
        lines
    }

    fn finish(self) -> Vec<LogLine> {
        [(Stream::Stdout, self.stdout), (Stream::Stderr, self.stderr)]
            .into_iter()
            .filter(|(_, rest)| !rest.is_empty())
            .map(|(stream, rest)| LogLine {
                stream,
                text: String::from_utf8_lossy(&rest).into_owned(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_ports_are_read_from_both_messages() {
        assert_eq!(
            taken_port("driver failed programming external connectivity on endpoint x: Bind for 127.0.0.1:8000 failed: port is already allocated"),
            Some(8000)
        );
        assert_eq!(
            taken_port("Error starting userland proxy: listen tcp4 127.0.0.1:8081: bind: address already in use"),
            Some(8081)
        );
        assert_eq!(taken_port("no such image"), None);
    }

    #[test]
    fn log_frames_are_cut_into_lines() {
        use bollard::container::LogOutput;
        let mut lines = Lines::default();
        let out = |s: &str| LogOutput::StdOut {
            message: s.as_bytes().to_vec().into(),
        };
        assert!(lines.push(out("hel")).is_empty());
        let got = lines.push(out("lo\nworld\r\nrest"));
        assert_eq!(
            got.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            ["hello", "world"]
        );
        assert_eq!(lines.finish()[0].text, "rest");
    }
}
