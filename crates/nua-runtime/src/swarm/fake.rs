//! A [`Swarm`] in memory, for the unit tests of what sits above: services take their spec at
//! once, and an update to an image marked as failing is rolled back, as Swarm does with
//! `failure_action: rollback` when the new task never gets healthy.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use super::*;

#[derive(Default)]
struct World {
    manager: Option<String>,
    networks: BTreeMap<String, Labels>,
    secrets: BTreeMap<String, (Vec<u8>, Labels)>,
    services: BTreeMap<String, Kept>,
    failing: BTreeSet<String>,
    refused: BTreeSet<String>,
    calls: Vec<String>,
}

struct Kept {
    spec: ServiceSpec,
    update: Option<Update>,
    /// Updates so far: what makes each one's `started` another.
    updates: u64,
    /// The task of the spec, whether its image starts.
    failed: bool,
}

/// A swarm of one manager node, `node-1`.
pub struct FakeSwarm {
    world: Mutex<World>,
}

impl Default for FakeSwarm {
    fn default() -> Self {
        FakeSwarm {
            world: Mutex::new(World {
                manager: Some("node-1".to_owned()),
                ..World::default()
            }),
        }
    }
}

impl FakeSwarm {
    pub fn new() -> FakeSwarm {
        FakeSwarm::default()
    }

    /// A Docker Engine in no swarm.
    pub fn outside() -> FakeSwarm {
        FakeSwarm {
            world: Mutex::new(World::default()),
        }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tasks of `image` never get healthy.
    pub fn fail_image(&self, image: &str) {
        self.world().failing.insert(image.to_owned());
    }

    /// Make the manager refuse any service spec of `image` (as it does a malformed one).
    pub fn refuse_image(&self, image: &str) {
        self.world().refused.insert(image.to_owned());
    }

    /// The spec a service runs now.
    pub fn spec(&self, name: &str) -> Option<ServiceSpec> {
        self.world().services.get(name).map(|k| k.spec.clone())
    }

    pub fn secret_data(&self, name: &str) -> Option<Vec<u8>> {
        self.world().secrets.get(name).map(|(d, _)| d.clone())
    }

    pub fn networks(&self) -> Vec<String> {
        self.world().networks.keys().cloned().collect()
    }

    /// What was asked, in order: `put NAME`, `remove NAME`, `secret NAME`, …
    pub fn calls(&self) -> Vec<String> {
        self.world().calls.clone()
    }
}

impl Swarm for FakeSwarm {
    fn manager(&self) -> Result<Option<String>, Error> {
        Ok(self.world().manager.clone())
    }

    fn nodes(&self) -> Result<Vec<NodeInfo>, Error> {
        let world = self.world();
        Ok(world
            .manager
            .iter()
            .map(|id| NodeInfo {
                id: id.clone(),
                hostname: "fake".to_owned(),
                state: "ready".to_owned(),
                availability: "active".to_owned(),
                manager: true,
                leader: true,
                address: "127.0.0.1".to_owned(),
                labels: Labels::new(),
            })
            .collect())
    }

    fn create_overlay(&self, name: &str, labels: &Labels) -> Result<(), Error> {
        let mut world = self.world();
        world.calls.push(format!("network {name}"));
        world
            .networks
            .entry(name.to_owned())
            .or_insert_with(|| labels.clone());
        Ok(())
    }

    fn create_secret(&self, name: &str, data: &[u8], labels: &Labels) -> Result<(), Error> {
        let mut world = self.world();
        world.calls.push(format!("secret {name}"));
        world
            .secrets
            .entry(name.to_owned())
            .or_insert_with(|| (data.to_vec(), labels.clone()));
        Ok(())
    }

    fn secrets(&self, label: &str, value: &str) -> Result<Vec<String>, Error> {
        Ok(self
            .world()
            .secrets
            .iter()
            .filter(|(_, (_, labels))| labels.get(label).map(String::as_str) == Some(value))
            .map(|(name, _)| name.clone())
            .collect())
    }

    fn remove_secret(&self, name: &str) -> Result<(), Error> {
        let mut world = self.world();
        let used = world
            .services
            .values()
            .any(|k| k.spec.secrets.iter().any(|s| s.secret == name));
        if used {
            return Err(Error::InUse {
                what: format!("the secret `{name}`"),
            });
        }
        world.calls.push(format!("remove secret {name}"));
        world.secrets.remove(name);
        Ok(())
    }

    fn service(&self, name: &str) -> Result<Option<ServiceInfo>, Error> {
        Ok(self.world().services.get(name).map(info))
    }

    fn services(&self, label: &str) -> Result<Vec<ServiceInfo>, Error> {
        Ok(self
            .world()
            .services
            .values()
            .filter(|k| k.spec.labels.contains_key(label))
            .map(info)
            .collect())
    }

    fn put_service(&self, spec: &ServiceSpec) -> Result<(), Error> {
        let mut world = self.world();
        world.calls.push(format!("put {}", spec.name));
        for secret in &spec.secrets {
            if !world.secrets.contains_key(&secret.secret) {
                return Err(Error::Api {
                    call: "POST /services/create",
                    source: bollard::errors::Error::DockerResponseServerError {
                        status_code: 404,
                        message: format!("secret {} not found", secret.secret),
                    },
                });
            }
        }
        if world.refused.contains(&spec.image) {
            return Err(Error::Api {
                call: "POST /services/update",
                source: bollard::errors::Error::DockerResponseServerError {
                    status_code: 400,
                    message: format!("invalid image {}", spec.image),
                },
            });
        }
        let failing = world.failing.contains(&spec.image);
        match world.services.get_mut(&spec.name) {
            None => {
                let kept = Kept {
                    spec: spec.clone(),
                    update: None,
                    updates: 0,
                    failed: failing,
                };
                world.services.insert(spec.name.clone(), kept);
            }
            // Swarm rolls back an update whose new task does not get healthy.
            Some(kept) if failing && spec.replicas > 0 => {
                kept.updates += 1;
                kept.update = Some(Update {
                    state: UpdateState::RollbackCompleted,
                    message: "rollback completed".to_owned(),
                    started: kept.updates.to_string(),
                });
            }
            Some(kept) => {
                // Scaling alone is no update.
                let template = ServiceSpec {
                    replicas: spec.replicas,
                    ..kept.spec.clone()
                };
                // A service that ran no task has none to replace: no update.
                if template != *spec && kept.spec.replicas > 0 {
                    kept.updates += 1;
                    kept.update = Some(Update {
                        state: UpdateState::Completed,
                        message: "update completed".to_owned(),
                        started: kept.updates.to_string(),
                    });
                }
                kept.spec = spec.clone();
                kept.failed = failing;
            }
        }
        Ok(())
    }

    fn scale(&self, name: &str, replicas: u64) -> Result<(), Error> {
        let mut world = self.world();
        world.calls.push(format!("scale {name} {replicas}"));
        if let Some(kept) = world.services.get_mut(name) {
            kept.spec.replicas = replicas;
        }
        Ok(())
    }

    fn remove_service(&self, name: &str) -> Result<(), Error> {
        let mut world = self.world();
        world.calls.push(format!("remove {name}"));
        world.services.remove(name);
        Ok(())
    }

    fn tasks(&self, service: &str) -> Result<Vec<TaskInfo>, Error> {
        let world = self.world();
        let Some(kept) = world.services.get(service) else {
            return Ok(Vec::new());
        };
        if kept.spec.replicas == 0 {
            return Ok(Vec::new());
        }
        let (state, error) = if kept.failed {
            (
                TaskState::Failed,
                Some("task: non-zero exit (1)".to_owned()),
            )
        } else {
            (TaskState::Running, None)
        };
        Ok(vec![TaskInfo {
            id: format!("{service}-task"),
            node: "node-1".to_owned(),
            state,
            desired: TaskState::Running,
            message: String::new(),
            error,
            container: Some(format!("{service}.1.task")),
            exit_code: kept.failed.then_some(1),
            image: kept.spec.image.clone(),
            digest: kept.spec.labels.get(SPEC_LABEL).cloned(),
        }])
    }
}

fn info(kept: &Kept) -> ServiceInfo {
    ServiceInfo {
        id: format!("id-{}", kept.spec.name),
        name: kept.spec.name.clone(),
        labels: kept.spec.labels.clone(),
        image: kept.spec.image.clone(),
        replicas: kept.spec.replicas,
        constraints: kept.spec.constraints.clone(),
        secrets: kept.spec.secrets.iter().map(|s| s.secret.clone()).collect(),
        update: kept.update.clone(),
    }
}
