//! [`Swarm`] on Docker Engine in swarm mode: services, tasks, secrets, overlay networks and
//! nodes through the manager's API.

use std::collections::HashMap;

use base64::Engine as _;
use bollard::models;
use bollard::query_parameters as query;

use super::containers::mount;
use super::{api, status, Docker};
use crate::swarm::*;
use crate::types::*;
use crate::Error;

fn nanos(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

fn label_filter(label: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), vec![label.to_owned()])])
}

/// What Docker is asked for, from a [`ServiceSpec`] and the IDs of its secrets by name.
fn service_spec(spec: &ServiceSpec, secret_ids: &HashMap<String, String>) -> models::ServiceSpec {
    let mounts = spec
        .mounts
        .iter()
        .map(|m| {
            let mut m = mount(m);
            let volume = spec
                .volumes
                .iter()
                .find(|v| m.source.as_ref() == Some(&v.name));
            if let (Some(models::MountTypeEnum::VOLUME), Some(volume)) = (&m.typ, volume) {
                m.volume_options = Some(models::MountVolumeOptions {
                    labels: Some(volume.labels.clone().into_iter().collect()),
                    driver_config: Some(models::MountVolumeOptionsDriverConfig {
                        name: Some(volume.driver.clone().unwrap_or_else(|| "local".to_owned())),
                        options: Some(volume.options.clone().into_iter().collect()),
                    }),
                    ..Default::default()
                });
            }
            m
        })
        .collect();
    let secrets = spec
        .secrets
        .iter()
        .map(|s| models::TaskSpecContainerSpecSecrets {
            file: Some(models::TaskSpecContainerSpecFile {
                name: Some(s.file.clone()),
                uid: Some("0".to_owned()),
                gid: Some("0".to_owned()),
                mode: Some(0o444),
            }),
            secret_id: secret_ids.get(&s.secret).cloned(),
            secret_name: Some(s.secret.clone()),
        })
        .collect();
    let container = models::TaskSpecContainerSpec {
        image: Some(spec.image.clone()),
        labels: Some(spec.labels.clone().into_iter().collect()),
        command: spec.entrypoint.clone(),
        args: spec.command.clone(),
        env: Some(spec.env.clone()),
        mounts: Some(mounts),
        secrets: Some(secrets),
        stop_grace_period: Some(nanos(spec.stop_grace)),
        init: Some(spec.init),
        health_check: Some(models::HealthConfig {
            test: spec.health_check.as_ref().map(|argv| {
                std::iter::once("CMD".to_owned())
                    .chain(argv.iter().cloned())
                    .collect()
            }),
            interval: Some(nanos(spec.health_interval)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let networks = spec
        .networks
        .iter()
        .map(|(name, aliases)| models::NetworkAttachmentConfig {
            target: Some(name.clone()),
            aliases: Some(aliases.clone()),
            driver_opts: None,
        })
        .collect();
    let order = match spec.order {
        Order::StartFirst => models::ServiceSpecUpdateConfigOrderEnum::START_FIRST,
        Order::StopFirst => models::ServiceSpecUpdateConfigOrderEnum::STOP_FIRST,
    };
    let rollback_order = match spec.order {
        Order::StartFirst => models::ServiceSpecRollbackConfigOrderEnum::START_FIRST,
        Order::StopFirst => models::ServiceSpecRollbackConfigOrderEnum::STOP_FIRST,
    };
    let ports = spec
        .host_ports
        .iter()
        .map(|p| models::EndpointPortConfig {
            protocol: Some(models::EndpointPortConfigProtocolEnum::TCP),
            target_port: Some(i64::from(p.container)),
            published_port: Some(i64::from(p.host)),
            publish_mode: Some(models::EndpointPortConfigPublishModeEnum::HOST),
            ..Default::default()
        })
        .collect();
    models::ServiceSpec {
        name: Some(spec.name.clone()),
        labels: Some(spec.labels.clone().into_iter().collect()),
        task_template: Some(models::TaskSpec {
            container_spec: Some(container),
            resources: Some(models::TaskSpecResources {
                limits: Some(models::Limit {
                    nano_cpus: spec.limits.nano_cpus,
                    memory_bytes: spec.limits.memory_bytes,
                    pids: spec.limits.pids,
                }),
                reservations: None,
            }),
            restart_policy: Some(models::TaskSpecRestartPolicy {
                condition: Some(match spec.restart {
                    Restart::No => models::TaskSpecRestartPolicyConditionEnum::NONE,
                    Restart::OnFailure(_) => models::TaskSpecRestartPolicyConditionEnum::ON_FAILURE,
                    Restart::Always | Restart::UnlessStopped => {
                        models::TaskSpecRestartPolicyConditionEnum::ANY
                    }
                }),
                delay: Some(nanos(std::time::Duration::from_secs(2))),
                max_attempts: match spec.restart {
                    Restart::OnFailure(n) if n > 0 => Some(i64::from(n)),
                    _ => None,
                },
                ..Default::default()
            }),
            placement: Some(models::TaskSpecPlacement {
                constraints: Some(spec.constraints.clone()),
                ..Default::default()
            }),
            // Swarm's VIP needs IPVS in the kernel; DNS round robin works everywhere.
            networks: Some(networks),
            ..Default::default()
        }),
        mode: Some(models::ServiceSpecMode {
            replicated: Some(models::ServiceSpecModeReplicated {
                replicas: Some(i64::try_from(spec.replicas).unwrap_or(i64::MAX)),
            }),
            ..Default::default()
        }),
        update_config: Some(models::ServiceSpecUpdateConfig {
            parallelism: Some(1),
            delay: Some(0),
            failure_action: Some(models::ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
            monitor: Some(nanos(spec.monitor)),
            max_failure_ratio: Some(0.0),
            order: Some(order),
        }),
        rollback_config: Some(models::ServiceSpecRollbackConfig {
            parallelism: Some(1),
            delay: Some(0),
            failure_action: Some(models::ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
            monitor: Some(nanos(spec.monitor)),
            max_failure_ratio: Some(0.0),
            order: Some(rollback_order),
        }),
        networks: None,
        endpoint_spec: Some(models::EndpointSpec {
            mode: Some(models::EndpointSpecModeEnum::DNSRR),
            ports: Some(ports),
        }),
    }
}

fn service_info(service: models::Service) -> ServiceInfo {
    let spec = service.spec.unwrap_or_default();
    let task = spec.task_template.unwrap_or_default();
    let container = task.container_spec.unwrap_or_default();
    let update = service.update_status.and_then(|u| {
        let state = match u.state? {
            models::ServiceUpdateStatusStateEnum::UPDATING => UpdateState::Updating,
            models::ServiceUpdateStatusStateEnum::PAUSED => UpdateState::Paused,
            models::ServiceUpdateStatusStateEnum::COMPLETED => UpdateState::Completed,
            models::ServiceUpdateStatusStateEnum::ROLLBACK_STARTED => UpdateState::RollbackStarted,
            models::ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED => UpdateState::RollbackPaused,
            models::ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED => {
                UpdateState::RollbackCompleted
            }
            models::ServiceUpdateStatusStateEnum::EMPTY => return None,
        };
        Some(Update {
            state,
            message: u.message.unwrap_or_default(),
            started: u.started_at.unwrap_or_default(),
        })
    });
    ServiceInfo {
        id: service.id.unwrap_or_default(),
        name: spec.name.unwrap_or_default(),
        labels: spec.labels.unwrap_or_default().into_iter().collect(),
        image: container.image.unwrap_or_default(),
        replicas: spec
            .mode
            .and_then(|m| m.replicated)
            .and_then(|r| r.replicas)
            .map_or(0, |r| u64::try_from(r).unwrap_or(0)),
        constraints: task
            .placement
            .and_then(|p| p.constraints)
            .unwrap_or_default(),
        secrets: container
            .secrets
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| s.secret_name)
            .collect(),
        update,
    }
}

fn task_state(state: Option<models::TaskState>) -> TaskState {
    use models::TaskState as S;
    match state {
        Some(S::STARTING) => TaskState::Starting,
        Some(S::RUNNING) => TaskState::Running,
        Some(S::COMPLETE) => TaskState::Complete,
        Some(S::SHUTDOWN) => TaskState::Shutdown,
        Some(S::FAILED) => TaskState::Failed,
        Some(S::REJECTED) => TaskState::Rejected,
        Some(S::REMOVE | S::ORPHANED) => TaskState::Gone,
        _ => TaskState::Pending,
    }
}

impl Docker {
    pub(super) fn swarm_manager(&self) -> Result<Option<String>, Error> {
        let info = self
            .runtime
            .block_on(self.client.info())
            .map_err(api("GET /info"))?;
        let swarm = info.swarm.unwrap_or_default();
        let active = swarm.local_node_state == Some(models::LocalNodeState::ACTIVE);
        Ok(swarm
            .node_id
            .filter(|id| active && !id.is_empty() && swarm.control_available == Some(true)))
    }

    pub(super) fn swarm_nodes(&self) -> Result<Vec<NodeInfo>, Error> {
        let nodes = self
            .runtime
            .block_on(self.client.list_nodes(None::<query::ListNodesOptions>))
            .map_err(api("GET /nodes"))?;
        let mut nodes: Vec<NodeInfo> = nodes
            .into_iter()
            .map(|n| {
                let spec = n.spec.unwrap_or_default();
                let status = n.status.unwrap_or_default();
                let manager = n.manager_status;
                NodeInfo {
                    id: n.id.unwrap_or_default(),
                    hostname: n.description.and_then(|d| d.hostname).unwrap_or_default(),
                    state: status
                        .state
                        .map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
                    availability: spec
                        .availability
                        .map_or_else(String::new, |a| a.to_string()),
                    manager: manager.is_some(),
                    leader: manager.as_ref().and_then(|m| m.leader).unwrap_or(false),
                    address: status.addr.unwrap_or_default(),
                    labels: spec.labels.unwrap_or_default().into_iter().collect(),
                }
            })
            .collect();
        nodes.sort_by(|a, b| a.hostname.cmp(&b.hostname).then(a.id.cmp(&b.id)));
        Ok(nodes)
    }

    pub(super) fn secret(&self, name: &str, data: &[u8], labels: &Labels) -> Result<(), Error> {
        let spec = models::SecretSpec {
            name: Some(name.to_owned()),
            labels: Some(labels.clone().into_iter().collect()),
            data: Some(base64::engine::general_purpose::STANDARD.encode(data)),
            ..Default::default()
        };
        match self.runtime.block_on(self.client.create_secret(spec)) {
            // One of that name exists: its content is the same, names carry a digest of it.
            Err(e) if status(&e) == Some(409) => Ok(()),
            other => other.map(|_| ()).map_err(api("POST /secrets/create")),
        }
    }

    pub(super) fn secrets_with(&self, label: &str, value: &str) -> Result<Vec<String>, Error> {
        let filters = label_filter(&format!("{label}={value}"));
        let options = query::ListSecretsOptionsBuilder::default()
            .filters(&filters)
            .build();
        let secrets = self
            .runtime
            .block_on(self.client.list_secrets(Some(options)))
            .map_err(api("GET /secrets"))?;
        let mut names: Vec<String> = secrets
            .into_iter()
            .filter_map(|s| s.spec.and_then(|s| s.name))
            .collect();
        names.sort();
        Ok(names)
    }

    pub(super) fn delete_secret(&self, name: &str) -> Result<(), Error> {
        match self.runtime.block_on(self.client.delete_secret(name)) {
            Err(e) if status(&e) == Some(404) => Ok(()),
            Err(e) if status(&e) == Some(409) => Err(Error::InUse {
                what: format!("the secret `{name}`"),
            }),
            other => other.map_err(api("DELETE /secrets/{id}")),
        }
    }

    async fn inspect_service(&self, name: &str) -> Result<Option<models::Service>, Error> {
        match self
            .client
            .inspect_service(name, None::<query::InspectServiceOptions>)
            .await
        {
            Ok(service) => Ok(Some(service)),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(api("GET /services/{id}")(e)),
        }
    }

    pub(super) fn service_named(&self, name: &str) -> Result<Option<ServiceInfo>, Error> {
        let service = self.runtime.block_on(self.inspect_service(name))?;
        // The API finds a service by ID prefix too: only its name counts here.
        Ok(service
            .map(service_info)
            .filter(|s| s.name == name || s.id == name))
    }

    pub(super) fn services_with(&self, label: &str) -> Result<Vec<ServiceInfo>, Error> {
        let filters = label_filter(label);
        let options = query::ListServicesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let services = self
            .runtime
            .block_on(self.client.list_services(Some(options)))
            .map_err(api("GET /services"))?;
        let mut services: Vec<ServiceInfo> = services.into_iter().map(service_info).collect();
        services.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(services)
    }

    pub(super) fn service_put(&self, spec: &ServiceSpec) -> Result<(), Error> {
        self.runtime.block_on(async {
            // A service names its secrets by ID.
            let mut ids = HashMap::new();
            for secret in &spec.secrets {
                let found = self
                    .client
                    .inspect_secret(&secret.secret)
                    .await
                    .map_err(api("GET /secrets/{id}"))?;
                ids.insert(secret.secret.clone(), found.id.unwrap_or_default());
            }
            let body = service_spec(spec, &ids);
            match self.inspect_service(&spec.name).await? {
                None => self
                    .client
                    .create_service(body, None)
                    .await
                    .map(|_| ())
                    .map_err(api("POST /services/create")),
                Some(existing) => {
                    let version = existing.version.and_then(|v| v.index).unwrap_or(0);
                    let options = query::UpdateServiceOptions {
                        version: i32::try_from(version).unwrap_or(i32::MAX),
                        ..Default::default()
                    };
                    self.client
                        .update_service(&spec.name, body, options, None)
                        .await
                        .map(|_| ())
                        .map_err(api("POST /services/{id}/update"))
                }
            }
        })
    }

    pub(super) fn service_scale(&self, name: &str, replicas: u64) -> Result<(), Error> {
        self.runtime.block_on(async {
            let service =
                self.inspect_service(name)
                    .await?
                    .ok_or_else(|| Error::NoSuchService {
                        name: name.to_owned(),
                    })?;
            let version = service.version.and_then(|v| v.index).unwrap_or(0);
            let mut spec = service.spec.unwrap_or_default();
            spec.mode = Some(models::ServiceSpecMode {
                replicated: Some(models::ServiceSpecModeReplicated {
                    replicas: Some(i64::try_from(replicas).unwrap_or(i64::MAX)),
                }),
                ..Default::default()
            });
            let options = query::UpdateServiceOptions {
                version: i32::try_from(version).unwrap_or(i32::MAX),
                ..Default::default()
            };
            self.client
                .update_service(name, spec, options, None)
                .await
                .map(|_| ())
                .map_err(api("POST /services/{id}/update"))
        })
    }

    pub(super) fn delete_service(&self, name: &str) -> Result<(), Error> {
        match self.runtime.block_on(self.client.delete_service(name)) {
            Err(e) if status(&e) == Some(404) => Ok(()),
            other => other.map_err(api("DELETE /services/{id}")),
        }
    }

    pub(super) fn service_tasks(&self, service: &str) -> Result<Vec<TaskInfo>, Error> {
        let filters = HashMap::from([("service".to_owned(), vec![service.to_owned()])]);
        let options = query::ListTasksOptionsBuilder::default()
            .filters(&filters)
            .build();
        let tasks = match self.runtime.block_on(self.client.list_tasks(Some(options))) {
            // No such service: no task.
            Err(e) if status(&e) == Some(404) => Vec::new(),
            other => other.map_err(api("GET /tasks"))?,
        };
        let mut tasks: Vec<(u64, TaskInfo)> = tasks
            .into_iter()
            .map(|t| {
                let status = t.status.unwrap_or_default();
                let container = status.container_status.unwrap_or_default();
                let container_spec = t.spec.and_then(|s| s.container_spec).unwrap_or_default();
                let digest = container_spec.labels.and_then(|mut l| l.remove(SPEC_LABEL));
                let image = container_spec.image.unwrap_or_default();
                let order = t.version.and_then(|v| v.index).unwrap_or(0);
                let info = TaskInfo {
                    id: t.id.unwrap_or_default(),
                    node: t.node_id.unwrap_or_default(),
                    state: task_state(status.state),
                    desired: task_state(t.desired_state),
                    message: status.message.unwrap_or_default(),
                    error: status.err.filter(|e| !e.is_empty()),
                    container: container.container_id.filter(|c| !c.is_empty()),
                    exit_code: container.exit_code,
                    image,
                    digest,
                };
                (order, info)
            })
            .collect();
        tasks.sort_by_key(|t| std::cmp::Reverse(t.0));
        Ok(tasks.into_iter().map(|(_, t)| t).collect())
    }
}

impl Swarm for Docker {
    fn manager(&self) -> Result<Option<String>, Error> {
        self.swarm_manager()
    }

    fn nodes(&self) -> Result<Vec<NodeInfo>, Error> {
        self.swarm_nodes()
    }

    fn create_overlay(&self, name: &str, labels: &Labels) -> Result<(), Error> {
        self.network_of(name, labels, "overlay")
    }

    fn create_secret(&self, name: &str, data: &[u8], labels: &Labels) -> Result<(), Error> {
        self.secret(name, data, labels)
    }

    fn secrets(&self, label: &str, value: &str) -> Result<Vec<String>, Error> {
        self.secrets_with(label, value)
    }

    fn remove_secret(&self, name: &str) -> Result<(), Error> {
        self.delete_secret(name)
    }

    fn service(&self, name: &str) -> Result<Option<ServiceInfo>, Error> {
        self.service_named(name)
    }

    fn services(&self, label: &str) -> Result<Vec<ServiceInfo>, Error> {
        self.services_with(label)
    }

    fn put_service(&self, spec: &ServiceSpec) -> Result<(), Error> {
        self.service_put(spec)
    }

    fn scale(&self, name: &str, replicas: u64) -> Result<(), Error> {
        self.service_scale(name, replicas)
    }

    fn remove_service(&self, name: &str) -> Result<(), Error> {
        self.delete_service(name)
    }

    fn tasks(&self, service: &str) -> Result<Vec<TaskInfo>, Error> {
        self.service_tasks(service)
    }
}
