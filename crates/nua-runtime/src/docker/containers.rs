//! Containers on Docker: create, start, stop, remove, inspect, list; bollard's models to
//! ours and back.

use std::collections::HashMap;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models;
use bollard::query_parameters as query;

use super::{api, message, status, Docker};
use crate::types::*;
use crate::Error;

/// The network mode of a container without network (but its loopback interface).
const NO_NETWORK: &str = "none";

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
                    // Empty: a port Docker chooses as the container starts.
                    host_port: Some(match port.host {
                        0 => String::new(),
                        host => host.to_string(),
                    }),
                });
        }
        let mounts = spec.mounts.iter().map(mount).collect();
        // `none` is a network mode, not a network a container has an endpoint in (Docker
        // refuses aliases there).
        let endpoint = spec.network.as_ref().filter(|n| n.as_str() != NO_NETWORK);
        let body = models::ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: spec.command.clone(),
            entrypoint: spec.entrypoint.clone(),
            healthcheck: spec.no_health_check.then(|| models::HealthConfig {
                test: Some(vec!["NONE".to_owned()]),
                ..Default::default()
            }),
            env: Some(spec.env.clone()),
            exposed_ports: Some(exposed),
            labels: Some(spec.labels.clone().into_iter().collect()),
            host_config: Some(models::HostConfig {
                port_bindings: Some(bindings),
                mounts: Some(mounts),
                network_mode: spec.network.clone(),
                restart_policy: Some(restart_policy(spec.restart)),
                init: spec.init.then_some(true),
                memory: spec.limits.memory_bytes,
                nano_cpus: spec.limits.nano_cpus,
                shm_size: spec.limits.shm_bytes,
                pids_limit: spec.limits.pids,
                ..Default::default()
            }),
            networking_config: endpoint.map(|network| {
                let endpoint = models::EndpointSettings {
                    aliases: Some(spec.aliases.clone()),
                    ..Default::default()
                };
                models::NetworkingConfig {
                    endpoints_config: Some(HashMap::from([(network.clone(), endpoint)])),
                }
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

    pub(super) fn rename(&self, name: &str, to: &str) -> Result<(), Error> {
        let options = query::RenameContainerOptionsBuilder::default()
            .name(to)
            .build();
        self.runtime
            .block_on(self.client.rename_container(name, options))
            .map_err(|source| match status(&source) {
                Some(409) => Error::NameTaken {
                    name: to.to_owned(),
                },
                _ => not_found(name, source, "POST /containers/{id}/rename"),
            })
    }

    pub(super) fn upload(&self, name: &str, archive: &[u8]) -> Result<(), Error> {
        let options = query::UploadToContainerOptionsBuilder::default()
            .path("/")
            .build();
        let body = bollard::body_full(bytes::Bytes::copy_from_slice(archive));
        self.runtime
            .block_on(self.client.upload_to_container(name, Some(options), body))
            .map_err(|e| not_found(name, e, "PUT /containers/{id}/archive"))
    }

    pub(super) fn kill(&self, name: &str, signal: &str) -> Result<(), Error> {
        let options = query::KillContainerOptionsBuilder::default()
            .signal(signal)
            .build();
        self.runtime
            .block_on(self.client.kill_container(name, Some(options)))
            .map_err(|e| not_found(name, e, "POST /containers/{id}/kill"))
    }

    pub(super) fn pause(&self, name: &str, paused: bool) -> Result<(), Error> {
        let (done, call) = if paused {
            (
                self.runtime.block_on(self.client.pause_container(name)),
                "POST /containers/{id}/pause",
            )
        } else {
            (
                self.runtime.block_on(self.client.unpause_container(name)),
                "POST /containers/{id}/unpause",
            )
        };
        done.map_err(|e| not_found(name, e, call))
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
}

pub(super) fn not_found(name: &str, source: BollardError, call: &'static str) -> Error {
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

fn restart_policy(restart: Restart) -> models::RestartPolicy {
    use models::RestartPolicyNameEnum as Name;
    let (name, retries) = match restart {
        Restart::No => (Name::NO, None),
        Restart::Always => (Name::ALWAYS, None),
        Restart::UnlessStopped => (Name::UNLESS_STOPPED, None),
        Restart::OnFailure(n) => (Name::ON_FAILURE, Some(i64::from(n))),
    };
    models::RestartPolicy {
        name: Some(name),
        maximum_retry_count: retries,
    }
}

pub(super) fn mount(mount: &Mount) -> models::Mount {
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
    // What was asked for, and, for a running container, what Docker bound: a binding asked
    // with host port 0 gets its port from Docker as the container starts.
    let asked = c
        .host_config
        .and_then(|h| h.port_bindings)
        .unwrap_or_default();
    let bound = c
        .network_settings
        .and_then(|n| n.ports)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, list)| list.as_ref().is_some_and(|l| !l.is_empty()))
        .collect::<std::collections::HashMap<_, _>>();
    let bindings = if bound.is_empty() { asked } else { bound };
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
        exit_code: matches!(status, State::Exited | State::Dead | State::Restarting)
            .then_some(state.exit_code)
            .flatten(),
        restart_count: c.restart_count.unwrap_or(0),
        state: status,
        health,
        ports,
        labels: config.labels.unwrap_or_default().into_iter().collect(),
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
}
