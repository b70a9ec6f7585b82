//! One instance of an app on this machine (`nua run`): what container to create from an
//! image and its nua-config. Ports are published on 127.0.0.1 only, on the port the config
//! asks for or, when that one is busy, on another free one; `[env]` plain values and the
//! caller's overrides are set; volumes become Docker volumes, tmpfs or bind mounts.
//!
//! Nothing here talks to an engine: [`plan`] is pure but for the port probe it is given.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use serde::Serialize;

use nua_config::{EnvKind, EnvValue, NuaConfig, PortNumber, Volume, VolumeType};
use nua_runtime::{ContainerSpec, ImageDetails, Labels, Mount, PortBinding, Protocol, VolumeSpec};

/// The label naming the app of every container and volume `nua run` makes.
pub const APP_LABEL: &str = "nua.app";
/// The label giving the image a container was made from.
pub const IMAGE_LABEL: &str = "nua.image";

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// What to run.
#[derive(Debug, Clone)]
pub struct Request {
    /// The container's name, also the app's name for `ps`, `logs` and `stop`.
    pub name: String,
    /// The image reference in the engine.
    pub image: String,
    pub details: ImageDetails,
    /// The app's nua-config, when the image has one.
    pub config: Option<NuaConfig>,
    /// `KEY=VALUE` given on the command line, in order; they win over `[env]`.
    pub env: Vec<(String, String)>,
    /// Whether `bind` and `directory` volumes may mount host folders: only when the config
    /// comes from an app the user builds, never from an image (which could ask for `/`).
    pub host_mounts: bool,
    /// `random` env values of earlier runs of this app, reused so that what the app stored
    /// with them in its volumes still matches.
    pub kept: BTreeMap<String, String>,
}

/// A port of the app and where it is published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Published {
    /// The port's name in the nua-config (`web`), or `8080/tcp` for a port only the image
    /// exposes.
    pub name: String,
    pub container: u16,
    pub protocol: Protocol,
    pub host_ip: IpAddr,
    pub host: u16,
}

/// The container to create, and what to tell the user about it.
#[derive(Debug, Clone)]
pub struct Plan {
    pub spec: ContainerSpec,
    pub published: Vec<Published>,
    pub volumes: Vec<VolumeSpec>,
    /// Folders to create on the host before starting (`directory` volumes).
    pub directories: Vec<PathBuf>,
    /// Things worth saying: a port moved, an env value that only a deployment computes.
    pub notes: Vec<String>,
    /// The `random` env values of this run (kept or new), to keep for the next one.
    pub random: BTreeMap<String, String>,
}

impl Published {
    /// The binding that publishes it.
    pub fn binding(&self) -> PortBinding {
        PortBinding {
            container: self.container,
            protocol: self.protocol,
            host_ip: self.host_ip,
            host: self.host,
        }
    }
}

/// Which host ports are free.
pub trait HostPorts {
    fn is_free(&self, port: u16, protocol: Protocol) -> bool;
    /// Some free port, other than those in `not`.
    fn any_free(&self, protocol: Protocol, not: &[u16]) -> Option<u16>;
}

/// Ports of this machine, probed by binding 127.0.0.1.
pub struct LocalPorts;

impl HostPorts for LocalPorts {
    fn is_free(&self, port: u16, protocol: Protocol) -> bool {
        match protocol {
            Protocol::Tcp => std::net::TcpListener::bind((LOCALHOST, port)).is_ok(),
            Protocol::Udp => std::net::UdpSocket::bind((LOCALHOST, port)).is_ok(),
        }
    }

    fn any_free(&self, protocol: Protocol, not: &[u16]) -> Option<u16> {
        for _ in 0..16 {
            let port = match protocol {
                Protocol::Tcp => std::net::TcpListener::bind((LOCALHOST, 0))
                    .and_then(|l| l.local_addr())
                    .ok()?
                    .port(),
                Protocol::Udp => std::net::UdpSocket::bind((LOCALHOST, 0))
                    .and_then(|l| l.local_addr())
                    .ok()?
                    .port(),
            };
            if !not.contains(&port) {
                return Some(port);
            }
        }
        None
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no free {protocol} port left on 127.0.0.1 for `{name}`", protocol = protocol.as_str())]
    NoFreePort { name: String, protocol: Protocol },
    #[error(
        "the image asks to mount the host folder `{}` at `{target}`; an image may not choose \
         host folders unless `--allow-host-mounts` is given",
        path.display()
    )]
    HostMount { path: PathBuf, target: String },
    #[error("the host folder `{}` of the bind volume `{target}` does not exist", path.display())]
    NoBindSource { path: PathBuf, target: String },
    #[error(
        "`{option} = \"{value}\"` of the volume `{target}` is not a size (like `64m` or `1G`)"
    )]
    BadSize {
        target: String,
        option: String,
        value: String,
    },
}

/// The container for `request`. `taken` lists host ports to avoid (found busy by a start).
pub fn plan(request: &Request, ports: &dyn HostPorts, taken: &[u16]) -> Result<Plan, Error> {
    let mut notes = Vec::new();
    let mut random = BTreeMap::new();
    let env = environment(request, &mut notes, &mut random);
    let lookup = |key: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let mut published: Vec<Published> = Vec::new();
    for (name, container, protocol, wanted) in wanted_ports(request, &lookup, &mut notes) {
        // A host port is taken per protocol: 8000/tcp and 8000/udp are two ports.
        let used: Vec<u16> = published
            .iter()
            .filter(|p| p.protocol == protocol)
            .map(|p| p.host)
            .chain(taken.iter().copied())
            .collect();
        let host = if !used.contains(&wanted) && ports.is_free(wanted, protocol) {
            wanted
        } else {
            let other = ports
                .any_free(protocol, &used)
                .ok_or_else(|| Error::NoFreePort {
                    name: name.clone(),
                    protocol,
                })?;
            notes.push(format!(
                "port {wanted} is taken: {name} is published on 127.0.0.1:{other} instead"
            ));
            other
        };
        published.push(Published {
            name,
            container,
            protocol,
            host_ip: LOCALHOST,
            host,
        });
    }
    let mut plan = Plan {
        spec: ContainerSpec {
            name: request.name.clone(),
            image: request.image.clone(),
            env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            ports: published.iter().map(Published::binding).collect(),
            mounts: Vec::new(),
            labels: labels(request),
            network: None,
            aliases: Vec::new(),
            // `nua run` watches its container itself and removes it when it stops.
            ..ContainerSpec::default()
        },
        published,
        volumes: Vec::new(),
        directories: Vec::new(),
        notes,
        random,
    };
    if let Some(config) = &request.config {
        for volume in &config.volume {
            add_volume(&mut plan, &request.name, volume, request.host_mounts)?;
        }
    }
    Ok(plan)
}

fn labels(request: &Request) -> Labels {
    BTreeMap::from([
        (APP_LABEL.to_owned(), request.name.clone()),
        (IMAGE_LABEL.to_owned(), request.image.clone()),
    ])
}

/// `[env]` plain values, random ones generated, then the overrides.
fn environment(
    request: &Request,
    notes: &mut Vec<String>,
    random: &mut BTreeMap<String, String>,
) -> Vec<(String, String)> {
    // Each variable once: Docker passes duplicates on, and programs differ on which of them
    // they see.
    let overridden = |key: &str| request.env.iter().any(|(k, _)| k == key);
    let mut env: Vec<(String, String)> = Vec::new();
    for (key, value) in request.config.iter().flat_map(|c| &c.env) {
        if overridden(key) {
            continue;
        }
        let text = match value {
            EnvValue::Spec(spec) if value.kind() == EnvKind::Random => {
                let length = spec.length.unwrap_or(24) as usize;
                let value = match request.kept.get(key) {
                    Some(kept) if kept.len() == length => kept.clone(),
                    _ => crate::values::random_value(length),
                };
                random.insert(key.clone(), value.clone());
                value
            }
            EnvValue::Spec(spec) => {
                let from_deployment =
                    value.kind() == EnvKind::From && spec.from.as_deref().is_none_or(str::is_empty);
                let what = if from_deployment {
                    "from the deployment"
                } else {
                    kind_name(value.kind())
                };
                notes.push(format!(
                    "`{key}` is computed by a deployment ({what}); it is not set: give it with `--env {key}=…`"
                ));
                continue;
            }
            plain => plain.literal().unwrap_or_default(),
        };
        env.push((key.clone(), text));
    }
    // The overrides in the order given, the last of a key winning.
    for (i, (key, value)) in request.env.iter().enumerate() {
        if !request.env[i + 1..].iter().any(|(k, _)| k == key) {
            env.push((key.clone(), value.clone()));
        }
    }
    env
}

fn kind_name(kind: EnvKind) -> &'static str {
    match kind {
        EnvKind::Plain | EnvKind::Random => "a value",
        EnvKind::From => "from a provider",
        EnvKind::UniqueUser => "a unique user name",
        EnvKind::UniqueDb => "a unique database name",
        EnvKind::ExternalIp => "the server's address",
        EnvKind::NuaInternal => "by Nua",
    }
}

/// The ports to publish: the config's (name, container port, protocol, wanted host port),
/// then those the image exposes that the config does not name.
fn wanted_ports(
    request: &Request,
    lookup: &dyn Fn(&str) -> Option<String>,
    notes: &mut Vec<String>,
) -> Vec<(String, u16, Protocol, u16)> {
    let mut wanted = Vec::new();
    if let Some(config) = &request.config {
        for (name, port) in config.ports() {
            let protocol = match port.protocol {
                Some(nua_config::Protocol::Udp) => Protocol::Udp,
                _ => Protocol::Tcp,
            };
            let number = |n: &PortNumber| match n {
                PortNumber::Number(n) => Some(*n),
                PortNumber::Env(from) => lookup(&from.key).and_then(|v| v.trim().parse().ok()),
                PortNumber::Auto(_) => None,
            };
            let Some(container) = number(&port.container) else {
                notes.push(format!(
                    "the port `{name}` is not published: its container port is only known to a deployment"
                ));
                continue;
            };
            let host = port.host.as_ref().and_then(number).unwrap_or(container);
            wanted.push((name.clone(), container, protocol, host));
        }
    }
    for exposed in &request.details.exposed_ports {
        let Some((container, protocol)) = Protocol::parse_port(exposed) else {
            continue;
        };
        if !wanted
            .iter()
            .any(|(_, c, p, _)| *c == container && *p == protocol)
        {
            wanted.push((exposed.clone(), container, protocol, container));
        }
    }
    wanted
}

/// Whether a volume is a tmpfs: said so, or managed (the loader's default for an untyped
/// one) with `tmpfs_*` options and no driver, as the original Nua's samples write it: no
/// volume driver takes those options.
fn is_tmpfs(volume: &Volume) -> bool {
    match volume.kind {
        Some(VolumeType::Tmpfs) => true,
        None | Some(VolumeType::Managed) => {
            volume.driver.is_none()
                && volume
                    .options
                    .as_ref()
                    .is_some_and(|o| o.keys().any(|k| k.starts_with("tmpfs")))
        }
        _ => false,
    }
}

fn option<'a>(volume: &'a Volume, names: &[&'a str]) -> Option<&'a serde_json::Value> {
    named_option(volume, names).map(|(_, v)| v)
}

/// The first of `names` the volume's options have, with its value.
fn named_option<'a>(
    volume: &'a Volume,
    names: &[&'a str],
) -> Option<(&'a str, &'a serde_json::Value)> {
    let options = volume.options.as_ref()?;
    names.iter().find_map(|n| options.get(*n).map(|v| (*n, v)))
}

fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn add_volume(plan: &mut Plan, app: &str, volume: &Volume, host_mounts: bool) -> Result<(), Error> {
    let labels = BTreeMap::from([(APP_LABEL.to_owned(), app.to_owned())]);
    let made = volume_mount(volume, &|base| format!("{app}_{base}"), labels, host_mounts)?;
    plan.spec.mounts.push(made.mount);
    plan.volumes.extend(made.volume);
    plan.directories.extend(made.directory);
    Ok(())
}

/// What a volume of a nua-config becomes in a container.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeMount {
    pub mount: Mount,
    /// The named volume to create first (a `managed` one).
    pub volume: Option<VolumeSpec>,
    /// The host folder to create first (a `directory` one).
    pub directory: Option<PathBuf>,
}

/// The mount of `volume`: a tmpfs, a host folder (only when `host_mounts`), or a named volume
/// called `name_of(its name)` carrying `labels`. Its options are passed as written; a
/// `read-only` option makes the mount read-only.
pub fn volume_mount(
    volume: &Volume,
    name_of: &dyn Fn(&str) -> String,
    labels: Labels,
    host_mounts: bool,
) -> Result<VolumeMount, Error> {
    let target = volume.target.clone();
    let read_only = option(volume, &["read-only", "read_only", "readonly"])
        .is_some_and(|v| v == &serde_json::Value::Bool(true) || text(v) == "true");
    let only = |mount| VolumeMount {
        mount,
        volume: None,
        directory: None,
    };
    if is_tmpfs(volume) {
        let size_bytes = named_option(volume, &["tmpfs_size", "tmpfs-size", "size"])
            .map(|(name, v)| {
                parse_size(&text(v)).ok_or_else(|| Error::BadSize {
                    target: target.clone(),
                    option: name.to_owned(),
                    value: text(v),
                })
            })
            .transpose()?;
        let mode = option(volume, &["tmpfs_mode", "tmpfs-mode", "mode"]).and_then(|v| match v {
            serde_json::Value::Number(n) => n.as_i64(),
            other => i64::from_str_radix(text(other).trim_start_matches("0o"), 8).ok(),
        });
        return Ok(only(Mount::Tmpfs {
            target,
            size_bytes,
            mode,
        }));
    }
    match volume.kind.unwrap_or(VolumeType::Managed) {
        VolumeType::Directory | VolumeType::Bind => {
            let source = PathBuf::from(volume.name.clone().unwrap_or_default());
            if !host_mounts {
                return Err(Error::HostMount {
                    path: source,
                    target,
                });
            }
            let directory = if volume.kind == Some(VolumeType::Directory) {
                Some(source.clone())
            } else if !source.exists() {
                return Err(Error::NoBindSource {
                    path: source,
                    target,
                });
            } else {
                None
            };
            Ok(VolumeMount {
                directory,
                ..only(Mount::Bind {
                    source,
                    target,
                    read_only,
                })
            })
        }
        VolumeType::Managed | VolumeType::Tmpfs => {
            let base = volume.name.clone().unwrap_or_else(|| {
                target
                    .trim_matches('/')
                    .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
            });
            let name = name_of(&base);
            let options = volume
                .options
                .iter()
                .flatten()
                .filter(|(k, _)| !matches!(k.as_str(), "read-only" | "read_only" | "readonly"))
                .map(|(k, v)| (k.clone(), text(v)))
                .collect();
            Ok(VolumeMount {
                volume: Some(VolumeSpec {
                    name: name.clone(),
                    // The original's modules write `driver = "docker"` for "Docker's own",
                    // which Docker calls `local`.
                    driver: volume.driver.clone().filter(|d| d != "docker"),
                    options,
                    labels,
                }),
                ..only(Mount::Volume {
                    name,
                    target,
                    read_only,
                })
            })
        }
    }
}

/// `10G`, `64m`, `512k`, `1048576`: bytes, with Docker's binary units.
fn parse_size(text: &str) -> Option<i64> {
    let text = text.trim();
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = text[digits.len()..].to_ascii_lowercase();
    let number: f64 = digits.trim().parse().ok()?;
    let factor: f64 = match unit.trim_end_matches('b') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = number * factor;
    (bytes >= 0.0 && bytes < i64::MAX as f64).then_some(bytes as i64)
}

#[cfg(test)]
mod tests;
