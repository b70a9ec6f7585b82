//! The reverse proxy: nginx from Debian, driven by Nua.
//!
//! Every instance with a `domain` is a route: requests for its host (and under its path, when
//! the domain is `host/path`, with the prefix stripped) go to the app's web port on 127.0.0.1.
//! [`domains`] groups the routes by host; [`render`] writes one nginx configuration file per
//! host from the templates in `templates/nginx/` (HTTP, or HTTPS with a redirect and HSTS
//! once a certificate is there; websockets; `X-Forwarded-*` headers; an ACME challenge folder
//! on every HTTP server); [`nginx::Nginx`] checks a new set of files with `nginx -t` before
//! it becomes the live one and reloads gracefully.
//!
//! An app's web port is its port named `web`, or its only port.

pub mod acme;
pub mod nginx;
mod render;
pub mod swarm;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::instance::{Desired, EngineKind, PlacedPort, Role};

pub use render::{render_common, render_main, render_site, render_stream};

/// How the proxy listens and where its files live.
#[derive(Debug, Clone)]
pub struct Settings {
    pub http_port: u16,
    pub https_port: u16,
    /// Where ACME HTTP-01 challenge files are served from
    /// (`/.well-known/acme-challenge/NAME` is `challenges/.well-known/acme-challenge/NAME`).
    pub challenges: PathBuf,
    /// A file of nginx directives included in every server block (`NUA_PROXY_INCLUDE`): the
    /// operator's own additions.
    pub include: Option<PathBuf>,
    /// The DNS server nginx asks for the addresses of the routes' upstreams (Docker's,
    /// `127.0.0.11`, for a proxy on a swarm).
    pub resolver: Option<String>,
}

/// Where requests under one path of a host go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// The instance served.
    pub label: String,
    /// `/`, or `/notes` for an app under a path.
    pub path: String,
    /// The nginx location: `/`, or `/notes/`.
    pub location: String,
    /// The app's web port: on 127.0.0.1, or on `upstream`.
    pub port: u16,
    /// The name the app answers to on the proxy's network (a Swarm service's), looked up
    /// again every second so that a replaced task is found; `None`: the app is on
    /// 127.0.0.1.
    pub upstream: Option<String>,
    /// nginx's `client_max_body_size`.
    pub max_body: String,
    pub connect_timeout: u64,
    pub read_timeout: u64,
    /// Answer 503 with `Retry-After` (the app is being replaced and must not run twice).
    pub maintenance: bool,
}

/// A certificate and its key, as nginx reads them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tls {
    pub certificate: PathBuf,
    pub key: PathBuf,
    /// Changes when the certificate is renewed (its configuration then changes, so nginx is
    /// reloaded and reads the new one).
    pub version: String,
}

/// A TCP port of an app the proxy forwards (a non-web port with `proxy` in the config), with
/// TLS terminated by the proxy unless the port says `ssl = false`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stream {
    pub label: String,
    /// The port's name in the config.
    pub name: String,
    /// Where the proxy listens.
    pub listen: u16,
    /// The app's port on 127.0.0.1.
    pub port: u16,
    pub plain: bool,
}

/// Everything one host name serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub host: String,
    pub routes: Vec<Route>,
    pub streams: Vec<Stream>,
    pub tls: Option<Tls>,
}

/// The largest request body a route accepts unless the app says otherwise: uploads work,
/// where nginx's own default of 1 MiB breaks them.
pub const MAX_BODY: &str = "64m";
/// Seconds to connect to the app, and to wait for its answer (or a websocket's next frame).
pub const CONNECT_TIMEOUT: u64 = 10;
/// Seconds to connect to a task of a Swarm service. On the overlay network a connection is
/// made in milliseconds, or its first SYN is resent after one second; a task that went away
/// while Docker's DNS (or nginx, for a second) still gives its address answers nothing at
/// all, and the request then goes to the next task, or gets the proxy's 503, after this
/// rather than after [`CONNECT_TIMEOUT`].
pub const SWARM_CONNECT_TIMEOUT: u64 = 2;
pub const READ_TIMEOUT: u64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{label}` has the domain `{domain}` but no web port: name one of its ports `web`")]
    NoWebPort { label: String, domain: String },
    #[error("`{label}` and `{other}` both serve `{domain}`")]
    Twice {
        label: String,
        other: String,
        domain: String,
    },
    #[error("port `{name}` of `{label}` asks the proxy to listen on {listen}, which {other}")]
    StreamTaken {
        label: String,
        name: String,
        listen: u16,
        /// Who has it: `port `x` of `y` has too`, `is the proxy's HTTP port`.
        other: String,
    },
    #[error("cannot render the nginx configuration of `{host}`")]
    Render {
        host: String,
        #[source]
        source: tera::Error,
    },
    #[error(transparent)]
    Nginx(#[from] nginx::Error),
}

/// The app's web port of `desired`: its port named `web`, or its only one.
fn web_port(desired: &Desired) -> Option<&PlacedPort> {
    let app = desired.containers.iter().find(|c| c.role == Role::App)?;
    match app.ports.iter().find(|p| p.name == "web") {
        Some(port) => Some(port),
        None if app.ports.len() == 1 => Some(&app.ports[0]),
        None => None,
    }
}

/// The TCP streams of `desired`: its other ports with a `proxy` port.
fn streams_of(desired: &Desired) -> Vec<Stream> {
    let web = web_port(desired).map(|p| p.name.clone());
    let Some(app) = desired.containers.iter().find(|c| c.role == Role::App) else {
        return Vec::new();
    };
    app.ports
        .iter()
        .filter(|p| Some(&p.name) != web.as_ref() && p.protocol == "tcp")
        .filter_map(|p| {
            Some(Stream {
                label: desired.label.clone(),
                name: p.name.clone(),
                listen: p.proxy?,
                port: p.host?,
                plain: p.plain,
            })
        })
        .collect()
}

/// Refuse two streams on one port, or a stream on the proxy's own ports.
pub fn check_streams(domains: &[Domain], settings: &Settings) -> Result<(), Error> {
    let mut seen: BTreeMap<u16, &Stream> = BTreeMap::new();
    for stream in domains.iter().flat_map(|d| &d.streams) {
        let other = if stream.listen == settings.http_port {
            Some("is the proxy's HTTP port".to_owned())
        } else if stream.listen == settings.https_port {
            Some("is the proxy's HTTPS port".to_owned())
        } else {
            seen.get(&stream.listen)
                .map(|s| format!("port `{}` of `{}` has too", s.name, s.label))
        };
        if let Some(other) = other {
            return Err(Error::StreamTaken {
                label: stream.label.clone(),
                name: stream.name.clone(),
                listen: stream.listen,
                other,
            });
        }
        seen.insert(stream.listen, stream);
    }
    Ok(())
}

/// The domains the instances serve, by host, each with its routes (longest path first).
/// `tls` gives the certificate of a host, when there is one.
pub fn domains<'a>(
    instances: impl IntoIterator<Item = &'a Desired>,
    tls: &dyn Fn(&str) -> Option<Tls>,
) -> Result<Vec<Domain>, Error> {
    let mut by_host: BTreeMap<String, Vec<Route>> = BTreeMap::new();
    let mut streams: BTreeMap<String, Vec<Stream>> = BTreeMap::new();
    for desired in instances {
        let Some(domain) = &desired.domain else {
            continue;
        };
        let (host, path) = match domain.split_once('/') {
            Some((host, path)) => (host, format!("/{}", path.trim_matches('/'))),
            None => (domain.as_str(), "/".to_owned()),
        };
        let web = web_port(desired);
        // A Swarm service is reached on the proxy's overlay network, by its name.
        let upstream = match desired.engine {
            EngineKind::Docker => None,
            EngineKind::Swarm => desired
                .containers
                .iter()
                .find(|c| c.role == Role::App)
                .map(|c| c.name.clone()),
        };
        let port = match &upstream {
            Some(_) => web.map(|p| p.container),
            None => web.and_then(|p| p.host),
        };
        let port = port.ok_or_else(|| Error::NoWebPort {
            label: desired.label.clone(),
            domain: domain.clone(),
        })?;
        let host = host.to_ascii_lowercase();
        streams
            .entry(host.clone())
            .or_default()
            .extend(streams_of(desired));
        let routes = by_host.entry(host.clone()).or_default();
        if let Some(other) = routes.iter().find(|r| r.path == path) {
            return Err(Error::Twice {
                label: desired.label.clone(),
                other: other.label.clone(),
                domain: domain.clone(),
            });
        }
        let location = if path == "/" {
            path.clone()
        } else {
            format!("{path}/")
        };
        let options = desired
            .containers
            .iter()
            .find(|c| c.role == Role::App)
            .and_then(|c| c.proxy.clone())
            .unwrap_or_default();
        routes.push(Route {
            label: desired.label.clone(),
            path,
            location,
            port,
            upstream,
            max_body: options
                .max_body_mb
                .map_or_else(|| MAX_BODY.to_owned(), |mb| format!("{mb}m")),
            connect_timeout: options.connect_timeout.unwrap_or(match desired.engine {
                EngineKind::Docker => CONNECT_TIMEOUT,
                EngineKind::Swarm => SWARM_CONNECT_TIMEOUT,
            }),
            read_timeout: options.read_timeout.unwrap_or(READ_TIMEOUT),
            maintenance: false,
        });
    }
    Ok(by_host
        .into_iter()
        .map(|(host, mut routes)| {
            routes.sort_by(|a, b| b.path.len().cmp(&a.path.len()).then(a.path.cmp(&b.path)));
            Domain {
                tls: tls(&host),
                streams: streams.remove(&host).unwrap_or_default(),
                host,
                routes,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests;
