//! The desired state of one instance: what a `[[site]]` of a deploy file and the nua-config
//! of its image ask for, laid over each other, named, with its ports placed.
//!
//! - the app container `nua-<label>` and one container per provider `nua-<label>-<name>`,
//!   all on the instance's private network (`nua-<label>`, or the site's `network`), where a
//!   provider answers to its name; providers start first, in the config's order;
//! - managed volumes named `nua-<label>-<name>`, so two instances of one app share nothing;
//!   a site's volume replaces the config's volume of the same target, a provider override's
//!   the provider's;
//! - the app's ports published on 127.0.0.1: the host port the config or the site pins, or
//!   the first free one of the port range (default 8100–9000); provider ports never;
//! - env values as written (literals, `random`, `from`…): they are resolved when applied
//!   ([`crate::values`]), so no secret is ever part of the desired state, which the state
//!   database keeps in its journal.
//!
//! Pure: which host ports are taken is given.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use nua_config::{EnvValue, NuaConfig, Port, PortNumber, Provider, Site, Volume, VolumeType};

use crate::values::APP;

/// Labels on everything Nua creates for an instance.
pub const INSTANCE_LABEL: &str = "nua.instance";
pub const GENERATION_LABEL: &str = "nua.generation";
pub const ROLE_LABEL: &str = "nua.role";

/// The default host port range of app ports.
pub const PORT_RANGE: RangeInclusive<u16> = 8100..=9000;

/// What an instance should be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The app's id in its nua-config.
    pub app_id: String,
    pub network: String,
    /// Providers first, in start order, then the app.
    pub containers: Vec<Container>,
    /// Where it runs (`NUA_ENGINE`); absent in what earlier versions recorded: Docker.
    #[serde(default, skip_serializing_if = "EngineKind::is_docker")]
    pub engine: EngineKind,
}

/// What runs an instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Containers on this server's Docker Engine.
    #[default]
    Docker,
    /// Services of the Docker Swarm this server's engine manages.
    Swarm,
}

impl EngineKind {
    fn is_docker(&self) -> bool {
        *self == EngineKind::Docker
    }

    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Docker => "docker",
            EngineKind::Swarm => "swarm",
        }
    }
}

impl Desired {
    /// The same instance to run on `engine`. A Swarm's services publish nothing on the
    /// host: the cluster's proxy reaches them on their network, by name.
    pub fn on(mut self, engine: EngineKind) -> Desired {
        self.engine = engine;
        if engine == EngineKind::Swarm {
            for port in self.containers.iter_mut().flat_map(|c| c.ports.iter_mut()) {
                port.host = None;
            }
        }
        self
    }
}

/// Whether a container is the app or one of its providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    App,
    Provider,
}

/// One container of an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    /// The Docker name.
    pub name: String,
    /// `app` or the provider's name: its host name on the instance's network.
    pub component: String,
    pub role: Role,
    pub image: String,
    /// As written: resolved when applied.
    pub env: BTreeMap<String, EnvValue>,
    pub ports: Vec<PlacedPort>,
    /// Volumes, managed ones already named for the instance.
    pub volumes: Vec<Volume>,
    /// Docker options as written in the config and the site.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub docker: BTreeMap<String, serde_json::Value>,
    /// A command run in the container that says it is ready (exit 0) sooner than Docker's
    /// health interval would: the app's `[healthcheck]`, a provider's protocol check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_check: Option<Vec<String>>,
    /// The app must never run twice (`[run] single-writer`): an upgrade stops it first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub single_writer: bool,
    /// How the proxy serves the app (`[proxy]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<nua_config::ProxyOptions>,
    /// A provider's module (`postgres`, `mariadb`, …): how its data is dumped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Its `[backup]` (the app's, or a provider's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<nua_config::Backup>,
}

/// The protocol check of a provider module: the server answers on TCP (the official images'
/// first-start initialisation runs a server on the socket only, which must not count).
fn protocol_check(module: Option<&str>) -> Option<Vec<String>> {
    let argv: &[&str] = match module? {
        "postgres" => &["pg_isready", "-q", "-h", "127.0.0.1"],
        "mariadb" => &["mariadb-admin", "ping", "--silent", "-h", "127.0.0.1"],
        "redis-cache" => &["redis-cli", "-h", "127.0.0.1", "ping"],
        _ => return None,
    };
    Some(argv.iter().map(|a| (*a).to_owned()).collect())
}

/// A port of a container and where it is published (apps only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedPort {
    pub name: String,
    pub container: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The port on 127.0.0.1; `None` for a provider's (never published).
    pub host: Option<u16>,
    /// The port the proxy listens on for it (`proxy` in the config): a TCP stream for a port
    /// that is not the web port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<u16>,
    /// `ssl = false`: the proxy does not terminate TLS for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub plain: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "site `{label}` overrides provider `{name}`, which `{app}` does not have (it has: {known})"
    )]
    UnknownProvider {
        label: String,
        name: String,
        app: String,
        known: String,
    },
    #[error("provider `{name}` of `{app}` has no image: give its `module-name` or a `base-image` in its `[provider.build]`")]
    NoProviderImage { app: String, name: String },
    #[error(
        "`{app}` asks to mount the host folder `{path}` at `{target}`; an image may not choose \
         host folders"
    )]
    HostMount {
        app: String,
        path: String,
        target: String,
    },
    #[error("port `{name}` of `{label}` asks for host port {port}, which `{holder}` holds")]
    PortHeld {
        label: String,
        name: String,
        port: u16,
        holder: String,
    },
    #[error("port `{name}` of `{label}`: no free host port is left in {}–{}", range.start(), range.end())]
    NoFreePort {
        label: String,
        name: String,
        range: RangeInclusive<u16>,
    },
    #[error("`[docker]` of {component} of `{label}`: {message}")]
    DockerOption {
        label: String,
        /// `the app` or `provider `database``.
        component: String,
        message: String,
    },
    #[error("port `{name}` of `{label}`: `{value}` is not a port number a deployment can publish")]
    BadPort {
        label: String,
        name: String,
        value: String,
    },
}

/// Which host ports are taken, and by whom.
pub trait TakenPorts {
    /// The instance (or `another program`) holding `port` on 127.0.0.1, if any.
    fn holder(&self, port: u16) -> Option<String>;
}

/// The label of a site: its own, else the app's id and the domain (`notes-a-example-com`).
pub fn label_of(site: &Site, app_id: &str) -> String {
    if let Some(label) = &site.label {
        return label.clone();
    }
    let mut label = app_id.to_ascii_lowercase();
    if let Some(domain) = &site.domain {
        label.push('-');
        label.push_str(domain);
    }
    let clean: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    clean.trim_matches('-').to_owned()
}

/// Where the ports go: which are taken, the range of free ones, and where an earlier
/// generation put them (kept when still free, so a redeploy moves nothing).
pub struct Placement<'a> {
    pub taken: &'a dyn TakenPorts,
    pub range: RangeInclusive<u16>,
    pub previous: Option<&'a Desired>,
}

/// The desired state of `site`, whose image `image` carries `config`; `provider_image` gives
/// the image of each provider (Nua's own or its module's link).
pub fn plan(
    site: &Site,
    image: &str,
    config: &NuaConfig,
    provider_image: &dyn Fn(&Provider) -> Option<String>,
    placement: &Placement<'_>,
) -> Result<Desired, Error> {
    let label = label_of(site, config.id());
    let prefix = format!("nua-{label}");
    // Host folders are the operator's to choose (in the deploy file), never an image's.
    let from_image = config
        .volume
        .iter()
        .chain(config.provider.iter().flat_map(|p| &p.volume));
    for volume in from_image {
        if matches!(volume.kind, Some(VolumeType::Bind | VolumeType::Directory)) {
            return Err(Error::HostMount {
                app: config.id().to_owned(),
                path: volume.name.clone().unwrap_or_default(),
                target: volume.target.clone(),
            });
        }
    }
    for over in &site.provider {
        if !config.provider.iter().any(|p| p.name == over.name) {
            let known: Vec<&str> = config.provider.iter().map(|p| p.name.as_str()).collect();
            return Err(Error::UnknownProvider {
                label,
                name: over.name.clone(),
                app: config.id().to_owned(),
                known: if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                },
            });
        }
    }
    let mut containers = Vec::new();
    for provider in &config.provider {
        let over = site.provider.iter().find(|o| o.name == provider.name);
        let image = provider_image(provider).ok_or_else(|| Error::NoProviderImage {
            app: config.id().to_owned(),
            name: provider.name.clone(),
        })?;
        let mut env = provider.env.clone();
        let mut volumes = provider.volume.clone();
        let mut docker: BTreeMap<_, _> = provider.docker.clone().unwrap_or_default();
        let mut port_defs = provider.port.clone();
        if let Some(over) = over {
            env.extend(over.env.clone());
            replace_volumes(&mut volumes, &over.volume);
            docker.extend(over.docker.clone());
            port_defs.extend(over.port.clone());
        }
        crate::options::run_options(&docker).map_err(|message| Error::DockerOption {
            label: label.clone(),
            component: format!("provider `{}`", provider.name),
            message,
        })?;
        let ports = port_defs
            .iter()
            .map(|(name, port)| {
                Ok(PlacedPort {
                    host: None,
                    ..unplaced(&label, name, port)?
                })
            })
            .collect::<Result<_, Error>>()?;
        containers.push(Container {
            name: format!("{prefix}-{}", provider.name),
            component: provider.name.clone(),
            role: Role::Provider,
            image,
            env,
            ports,
            volumes: name_volumes(&prefix, volumes),
            docker,
            ready_check: protocol_check(provider.module_name.as_deref()),
            single_writer: false,
            proxy: None,
            module: provider.module_name.clone(),
            backup: provider.backup.clone(),
        });
    }
    let mut env = config.env.clone();
    env.extend(site.env.clone());
    let mut volumes = config.volume.clone();
    replace_volumes(&mut volumes, &site.volume);
    let mut port_defs = config.port.clone();
    port_defs.extend(site.port.clone());
    let mut docker: BTreeMap<_, _> = config.docker.clone().unwrap_or_default();
    docker.extend(site.docker.clone());
    crate::options::run_options(&docker).map_err(|message| Error::DockerOption {
        label: label.clone(),
        component: "the app".to_owned(),
        message,
    })?;
    containers.push(Container {
        name: prefix.clone(),
        component: APP.to_owned(),
        role: Role::App,
        image: image.to_owned(),
        env,
        ports: place_ports(&label, &port_defs, placement)?,
        volumes: name_volumes(&prefix, volumes),
        docker,
        ready_check: config
            .healthcheck()
            .map(|h| vec!["sh".to_owned(), "-c".to_owned(), h.command.clone()]),
        single_writer: config
            .run
            .as_ref()
            .and_then(|r| r.single_writer)
            .unwrap_or(false),
        proxy: config.proxy.clone(),
        module: None,
        backup: config.backup.clone(),
    });
    Ok(Desired {
        network: site.network.clone().unwrap_or_else(|| prefix.clone()),
        label,
        domain: site.domain.clone(),
        app_id: config.id().to_owned(),
        containers,
        engine: EngineKind::Docker,
    })
}

/// The port `name` as the container sees it, not placed yet.
fn unplaced(label: &str, name: &str, port: &Port) -> Result<PlacedPort, Error> {
    let container = match &port.container {
        PortNumber::Number(n) => *n,
        other => {
            return Err(Error::BadPort {
                label: label.to_owned(),
                name: name.to_owned(),
                value: serde_json::to_string(other).unwrap_or_default(),
            })
        }
    };
    let protocol = match port.protocol {
        Some(nua_config::Protocol::Udp) => "udp",
        _ => "tcp",
    };
    let proxy = match &port.proxy {
        None => None,
        Some(PortNumber::Number(n)) => Some(*n),
        Some(other) => {
            return Err(Error::BadPort {
                label: label.to_owned(),
                name: name.to_owned(),
                value: serde_json::to_string(other).unwrap_or_default(),
            })
        }
    };
    Ok(PlacedPort {
        name: name.to_owned(),
        container,
        protocol: protocol.to_owned(),
        host: None,
        proxy,
        plain: port.ssl == Some(false),
    })
}

/// The app's ports on 127.0.0.1: a pinned host port if nobody holds it (else an error that
/// says who does), the others on the first free ports of `range`.
fn place_ports(
    label: &str,
    ports: &BTreeMap<String, Port>,
    placement: &Placement<'_>,
) -> Result<Vec<PlacedPort>, Error> {
    let (taken, range) = (placement.taken, &placement.range);
    let before = |name: &str| {
        placement
            .previous
            .and_then(|d| d.containers.iter().find(|c| c.role == Role::App))
            .and_then(|app| app.ports.iter().find(|p| p.name == name))
            .and_then(|p| p.host)
    };
    let mut placed: Vec<PlacedPort> = Vec::new();
    let used = |placed: &[PlacedPort], port: u16| placed.iter().any(|p| p.host == Some(port));
    // Pinned ports first, so that a free one is not given away to an unpinned port.
    let (pinned, free): (Vec<_>, Vec<_>) = ports
        .iter()
        .partition(|(_, p)| matches!(p.host, Some(PortNumber::Number(_))));
    for (name, port) in pinned {
        let Some(PortNumber::Number(host)) = port.host else {
            unreachable!("partitioned above");
        };
        let holder = taken.holder(host).filter(|h| h != label);
        if let Some(holder) = holder.or_else(|| used(&placed, host).then(|| label.to_owned())) {
            return Err(Error::PortHeld {
                label: label.to_owned(),
                name: name.clone(),
                port: host,
                holder,
            });
        }
        placed.push(PlacedPort {
            host: Some(host),
            ..unplaced(label, name, port)?
        });
    }
    for (name, port) in free {
        let host = before(name)
            .into_iter()
            .chain(range.clone())
            .find(|p| !used(&placed, *p) && taken.holder(*p).is_none())
            .ok_or_else(|| Error::NoFreePort {
                label: label.to_owned(),
                name: name.clone(),
                range: range.clone(),
            })?;
        placed.push(PlacedPort {
            host: Some(host),
            ..unplaced(label, name, port)?
        });
    }
    placed.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(placed)
}

/// `volumes` with each of `over` replacing the one of the same target (or added).
fn replace_volumes(volumes: &mut Vec<Volume>, over: &[Volume]) {
    for volume in over {
        volumes.retain(|v| v.target != volume.target);
        volumes.push(volume.clone());
    }
}

/// Managed volumes named for the instance (`nua-<label>-<name>`); the others as they are.
fn name_volumes(prefix: &str, volumes: Vec<Volume>) -> Vec<Volume> {
    volumes
        .into_iter()
        .map(|mut v| {
            if v.kind.unwrap_or(VolumeType::Managed) == VolumeType::Managed {
                let base = v.name.clone().unwrap_or_else(|| {
                    v.target
                        .trim_matches('/')
                        .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
                });
                v.name = Some(format!("{prefix}-{base}"));
            }
            v
        })
        .collect()
}

#[cfg(test)]
mod tests;
