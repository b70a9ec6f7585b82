//! The reverse proxy as the command line runs it: its settings, and nginx brought in line
//! with the recorded instances after every change.
//!
//! Settings: `NUA_PROXY` (`own`, the default: Nua's own nginx; `none`: no proxy, put your own
//! in front of the 127.0.0.1 ports; `swarm`, the default with `NUA_ENGINE=swarm`: Nua's nginx
//! image as a Swarm service that reaches the apps on their overlay network), `NUA_HTTP_PORT` and `NUA_HTTPS_PORT` (80 and 443),
//! `NUA_NGINX` (the nginx binary, `/usr/sbin/nginx`), `NUA_PROXY_DIR` (its tree; beside the
//! state folder, `/var/lib/nua-proxy` as root), `NUA_PROXY_INCLUDE` (a file of directives
//! added to every server block).

use std::path::PathBuf;

use anyhow::Context as _;

use nua::cli::Hint;
use nua_deploy::instance::{Desired, EngineKind};
use nua_deploy::proxy::{self, acme, acme::Acme, nginx::Nginx};
use nua_deploy::state::{self, State};

fn port(name: &str, default: u16) -> anyhow::Result<u16> {
    match std::env::var(name) {
        Ok(text) if !text.trim().is_empty() => text
            .trim()
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| anyhow::anyhow!("`{name}={text}` is not a port number")),
        _ => Ok(default),
    }
}

/// The file through which the system's nginx includes Nua's sites (`nua server install`
/// writes it); its presence makes `system` the default proxy.
pub const SYSTEM_INCLUDE: &str = "/etc/nginx/conf.d/nua.conf";

/// Nua's nginx: the system's (`NUA_PROXY=system`, the default once `nua server install` has
/// set it up), its own (`own`, the default otherwise), or none (`none`).
pub fn own_nginx() -> anyhow::Result<Option<Nginx>> {
    let mode = std::env::var("NUA_PROXY").unwrap_or_default();
    let on_swarm = crate::deploy::engine_kind()? == EngineKind::Swarm;
    let (system, swarm) = match mode.as_str() {
        "" if on_swarm => (false, true),
        "" => (std::path::Path::new(SYSTEM_INCLUDE).exists(), false),
        "own" | "system" if on_swarm => {
            return Err(anyhow::anyhow!(
                "`NUA_PROXY={mode}` is nginx on this host, which cannot reach the overlay \
                 networks of the apps `NUA_ENGINE=swarm` deploys"
            )
            .context(Hint(
                "leave `NUA_PROXY` unset (or `swarm`): Nua's nginx then runs as a Swarm \
                 service; `none` puts no proxy in front"
                    .into(),
            )))
        }
        "own" => (false, false),
        "system" => (true, false),
        "swarm" => (false, true),
        "none" => return Ok(None),
        other => {
            return Err(anyhow::anyhow!(
                "`NUA_PROXY={other}` is none of `own`, `system`, `swarm` and `none`"
            ))
        }
    };
    let binary = std::env::var_os("NUA_NGINX")
        .filter(|b| !b.is_empty())
        .map_or_else(|| PathBuf::from("/usr/sbin/nginx"), PathBuf::from);
    let dir = match std::env::var_os("NUA_PROXY_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        // Beside the state folder, not in it: nginx's workers do not run as its owner and
        // must reach their temporary files and the ACME challenges.
        None => {
            let state = state::default_dir();
            let name = state
                .file_name()
                .map_or("nua".into(), |n| n.to_string_lossy().into_owned());
            state
                .parent()
                .unwrap_or(std::path::Path::new("/"))
                .join(format!("{name}-proxy"))
        }
    };
    // The swarm's nginx has a tree of its own: the pid it writes is its container's, which
    // must never be taken for a process of this host.
    let dir = if swarm { dir.join("swarm") } else { dir };
    let mut nginx = Nginx::own(
        binary,
        dir,
        port("NUA_HTTP_PORT", 80)?,
        port("NUA_HTTPS_PORT", 443)?,
    );
    nginx.settings.include = std::env::var_os("NUA_PROXY_INCLUDE")
        .filter(|i| !i.is_empty())
        .map(PathBuf::from);
    if swarm {
        nginx.task = Some(Box::new(swarm_proxy(&nginx)?));
        nginx.settings.resolver = Some(DOCKER_DNS.to_owned());
    }
    if system {
        let path = |name: &str, default: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from(default), PathBuf::from)
        };
        nginx.system = Some(proxy::nginx::System {
            conf: path("NUA_NGINX_CONF", "/etc/nginx/nginx.conf"),
            pid_file: path("NUA_NGINX_PID", "/run/nginx.pid"),
        });
    }
    Ok(Some(nginx))
}

/// Whether `nginx` can reach the app of `desired`: nginx on this host, what runs on this
/// host's engine; the proxy on a swarm, a swarm's services on their overlay networks.
fn served_by(desired: &Desired, nginx: &Nginx) -> bool {
    (desired.engine == EngineKind::Swarm) == nginx.task.is_some()
}

/// Docker's DNS server, on every container's loopback: it knows the services of the
/// networks a container is on.
const DOCKER_DNS: &str = "127.0.0.11";

/// The Swarm service that runs `nginx` on a swarm: Nua's nginx image, built from Debian once.
fn swarm_proxy(nginx: &Nginx) -> anyhow::Result<proxy::swarm::SwarmProxy> {
    let docker = std::sync::Arc::new(crate::load::docker()?);
    if nua_runtime::Swarm::manager(docker.as_ref())?.is_none() {
        return Err(anyhow::anyhow!(
            "`NUA_PROXY=swarm` runs the proxy as a Swarm service, and this Docker Engine is not \
             a manager of a swarm"
        )
        .context(Hint(
            "run `docker swarm init`, or choose another `NUA_PROXY`".into(),
        )));
    }
    // Built (or found) once per process, when the service or a check needs it.
    let image = {
        let docker = docker.clone();
        let tag: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        move || -> Result<String, String> {
            if let Some(tag) = tag.get() {
                return Ok(tag.clone());
            }
            let made = crate::deploy::own_image(&docker, "nginx")
                .map_err(|e| format!("Nua's nginx image: {e:#}"))?;
            Ok(tag.get_or_init(|| made).clone())
        }
    };
    let certs = state::default_dir().join("certs");
    fs_err::create_dir_all(&certs)?;
    fs_err::create_dir_all(&nginx.dir)?;
    let mut read_only = vec![certs];
    read_only.extend(nginx.settings.include.clone());
    Ok(proxy::swarm::SwarmProxy {
        engine: docker.clone(),
        swarm: docker,
        image: Box::new(image),
        dir: nginx.dir.clone(),
        read_only,
        http_port: nginx.settings.http_port,
        https_port: nginx.settings.https_port,
    })
}

/// Certificates from ACME, unless `NUA_ACME=off`: `NUA_ACME_DIRECTORY` (Let's Encrypt's
/// production directory by default), `NUA_ACME_EMAIL` (a contact), `NUA_ACME_CA_BUNDLE` (a
/// root to trust for a test CA); kept under the state folder.
pub fn acme(nginx: &Nginx) -> anyhow::Result<Option<Acme>> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    match var("NUA_ACME").as_deref() {
        None | Some("on") => {}
        Some("off") => return Ok(None),
        Some(other) => {
            return Err(anyhow::anyhow!(
                "`NUA_ACME={other}` is neither `on` nor `off`"
            ))
        }
    }
    Ok(Some(Acme {
        directory: var("NUA_ACME_DIRECTORY").unwrap_or_else(|| acme::LETS_ENCRYPT.to_owned()),
        email: var("NUA_ACME_EMAIL"),
        ca_bundle: var("NUA_ACME_CA_BUNDLE").map(PathBuf::from),
        dir: state::default_dir().join("certs"),
        challenges: nginx.settings.challenges.clone(),
    }))
}

/// Make the proxy serve the domains of every recorded instance (starting nginx when it does
/// not run), then order the certificates they lack and serve those hosts over HTTPS once they
/// come; nothing when there is no domain and nginx does not run. A host whose last order
/// failed is asked again after a backoff, or at once when `now` (a deploy).
pub fn sync(state: &State, quiet: bool, now: bool) -> anyhow::Result<()> {
    let Some(nginx) = own_nginx()? else {
        return Ok(());
    };
    let acme = acme(&nginx)?;
    let instances: Vec<Desired> = state
        .instances()?
        .into_iter()
        .filter_map(|i| serde_json::from_value::<Desired>(i.desired).ok())
        .filter(|d| served_by(d, &nginx))
        .collect();
    let certificate = |host: &str| acme.as_ref().and_then(|a| a.certificate(host));
    let domains = proxy::domains(&instances, &certificate).context("cannot configure the proxy")?;
    if domains.is_empty() && !nginx.serving()? {
        return Ok(());
    }
    apply_domains(&nginx, &domains, quiet)?;
    // Served over HTTP first: the CA checks its challenge through the running nginx.
    let Some(acme) = acme else {
        return Ok(());
    };
    // Certificates of hosts no longer served are kept until they expire, then forgotten.
    if let Ok(entries) = std::fs::read_dir(&acme.dir) {
        let now = acme::now() as i64;
        for entry in entries.flatten().filter(|e| e.path().is_dir()) {
            let host = entry.file_name().to_string_lossy().into_owned();
            let served = domains.iter().any(|d| d.host == host);
            if !served && acme.facts(&host).is_some_and(|f| f.not_after < now) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let mut issued = 0;
    // Hosts without a certificate, and those two thirds through its lifetime.
    for domain in domains.iter().filter(|d| acme.wanted(&d.host)) {
        if !now && !acme.due(&domain.host) {
            continue;
        }
        match acme.issue(&domain.host) {
            Ok(_) => {
                issued += 1;
                if !quiet {
                    eprintln!(
                        "certificate for {} issued by {}",
                        domain.host, acme.directory
                    );
                }
            }
            Err(err) => {
                let what = if domain.tls.is_some() {
                    format!(
                        "no renewed certificate for {}, it keeps its current one",
                        domain.host
                    )
                } else {
                    format!(
                        "no certificate for {} yet, it is served over HTTP",
                        domain.host
                    )
                };
                eprintln!(
                    "warning: {what}: {:#} (asked again later, with backoff)",
                    anyhow::Error::new(err)
                );
            }
        }
    }
    if issued > 0 {
        let domains = proxy::domains(&instances, &|host| acme.certificate(host))?;
        apply_domains(&nginx, &domains, quiet)?;
    }
    Ok(())
}

fn apply_domains(nginx: &Nginx, domains: &[proxy::Domain], quiet: bool) -> anyhow::Result<()> {
    let synced = nginx.sync(domains).map_err(|e| {
        let hint = e.hint();
        let err = anyhow::Error::new(e).context("the proxy was not updated");
        match hint {
            Some(h) => err.context(Hint(h.into())),
            None => err,
        }
    })?;
    if !quiet {
        let port = nginx.settings.http_port;
        if synced.started {
            eprintln!(
                "proxy: nginx started on port {port}, serving {} domain(s)",
                domains.len()
            );
        } else if synced.reloaded {
            eprintln!(
                "proxy: nginx reloaded (changed: {}{})",
                synced.changed.join(", "),
                if synced.removed.is_empty() {
                    String::new()
                } else {
                    format!("; removed: {}", synced.removed.join(", "))
                }
            );
        }
    }
    Ok(())
}

/// The proxy as an upgrade drives it: the other instances as recorded, and the one being
/// upgraded as it is about to be.
pub struct Switcher {
    pub nginx: Nginx,
    pub acme: Option<Acme>,
    pub others: Vec<Desired>,
}

impl Switcher {
    /// For an upgrade of `label`, when a proxy is configured.
    pub fn new(state: &State, label: &str) -> anyhow::Result<Option<Switcher>> {
        let Some(nginx) = own_nginx()? else {
            return Ok(None);
        };
        let others = state
            .instances()?
            .into_iter()
            .filter(|i| i.label != label)
            .filter_map(|i| serde_json::from_value::<Desired>(i.desired).ok())
            .filter(|d| served_by(d, &nginx))
            .collect();
        let acme = acme(&nginx)?;
        Ok(Some(Switcher {
            nginx,
            acme,
            others,
        }))
    }
}

impl Switcher {
    /// For replacing the app of `desired` (an upgrade, a rollback), when its domain is served
    /// and there is something to switch: on one engine, always (the new app starts beside
    /// the old one); on Swarm, where the proxy finds the new task by name, only for a
    /// `single-writer` app, whose domain answers 503 while its one task is replaced.
    pub fn for_replacing(
        state: &State,
        label: &str,
        desired: &Desired,
    ) -> anyhow::Result<Option<Switcher>> {
        let single_writer = desired.containers.iter().any(|c| c.single_writer);
        match (&desired.domain, desired.engine) {
            (Some(_), EngineKind::Docker) => Switcher::new(state, label),
            (Some(_), EngineKind::Swarm) if single_writer => Switcher::new(state, label),
            _ => Ok(None),
        }
    }
}

impl nua_deploy::apply::Routes for Switcher {
    fn route(&self, desired: &Desired, maintenance: bool) -> Result<(), String> {
        let all: Vec<&Desired> = self.others.iter().chain([desired]).collect();
        let certificate = |host: &str| self.acme.as_ref().and_then(|a| a.certificate(host));
        let mut domains = proxy::domains(all, &certificate).map_err(|e| e.to_string())?;
        for route in domains.iter_mut().flat_map(|d| &mut d.routes) {
            route.maintenance = maintenance && route.label == desired.label;
        }
        self.nginx
            .sync(&domains)
            .map(|_| ())
            .map_err(|e| format!("{:#}", anyhow::Error::new(e)))
    }
}

/// How long an old app keeps finishing its requests after the proxy switched to the new one:
/// `NUA_DRAIN_SECONDS`, 10 by default.
pub fn drain() -> anyhow::Result<std::time::Duration> {
    match std::env::var("NUA_DRAIN_SECONDS") {
        Ok(text) if !text.trim().is_empty() => text
            .trim()
            .parse()
            .map(std::time::Duration::from_secs_f64)
            .map_err(|_| anyhow::anyhow!("`NUA_DRAIN_SECONDS={text}` is not a number of seconds")),
        _ => Ok(std::time::Duration::from_secs(10)),
    }
}

/// One certificate as `nua certs --json` shows it.
#[derive(serde::Serialize)]
struct Shown {
    domain: String,
    /// `valid`, `missing`, or `renewing` (two thirds through its lifetime).
    state: &'static str,
    issuer: Option<String>,
    /// Seconds since the epoch.
    not_after: Option<i64>,
    days_left: Option<i64>,
    last_attempt: Option<u64>,
    last_error: Option<String>,
}

/// `nua certs`: every domain served, and those with a certificate kept.
pub fn certs(args: &crate::args::CertsArgs) -> anyhow::Result<std::process::ExitCode> {
    let nginx = own_nginx()?.ok_or_else(|| {
        anyhow::anyhow!("`NUA_PROXY=none`: Nua serves no domain, and holds no certificate")
    })?;
    let acme = acme(&nginx)?
        .ok_or_else(|| anyhow::anyhow!("`NUA_ACME=off`: Nua orders no certificate"))?;
    let mut hosts = std::collections::BTreeSet::new();
    if let Some(state) = crate::deploy::existing_state()? {
        for instance in state.instances()? {
            if let Some(domain) = instance.desired["domain"].as_str() {
                let host = domain.split('/').next().unwrap_or(domain);
                hosts.insert(host.to_ascii_lowercase());
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(&acme.dir) {
        for entry in entries.flatten().filter(|e| e.path().is_dir()) {
            hosts.insert(entry.file_name().to_string_lossy().into_owned());
        }
    }
    let now = acme::now() as i64;
    let shown: Vec<Shown> = hosts
        .into_iter()
        .map(|host| {
            let facts = acme.facts(&host);
            let attempt = acme.attempt(&host);
            Shown {
                state: match &facts {
                    None => "missing",
                    Some(f) if now >= f.renew_at() => "renewing",
                    Some(_) => "valid",
                },
                issuer: facts.as_ref().map(|f| f.issuer.clone()),
                not_after: facts.as_ref().map(|f| f.not_after),
                days_left: facts
                    .as_ref()
                    .map(|f| (f.not_after - now).div_euclid(86_400)),
                last_attempt: attempt.as_ref().map(|a| a.at),
                last_error: attempt.and_then(|a| a.error),
                domain: host,
            }
        })
        .collect();
    if args.output.json {
        nua::outln!("{}", serde_json::to_string(&shown)?)?;
        return Ok(std::process::ExitCode::SUCCESS);
    }
    nua::outln!(
        "{:<32} {:<9} {:<10} {:<24} ERROR",
        "DOMAIN",
        "STATE",
        "DAYS LEFT",
        "ISSUER"
    )?;
    for s in &shown {
        nua::outln!(
            "{:<32} {:<9} {:<10} {:<24} {}",
            s.domain,
            s.state,
            s.days_left.map_or("-".to_owned(), |d| d.to_string()),
            s.issuer.as_deref().unwrap_or("-"),
            s.last_error.as_deref().unwrap_or("")
        )?;
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// What is said of the certificate of a removed instance's host, when it has one.
pub fn kept_certificate(desired: &Desired) -> anyhow::Result<Option<String>> {
    let Some(domain) = &desired.domain else {
        return Ok(None);
    };
    let host = domain
        .split('/')
        .next()
        .unwrap_or(domain)
        .to_ascii_lowercase();
    let Some(nginx) = own_nginx()? else {
        return Ok(None);
    };
    let Some(acme) = acme(&nginx)? else {
        return Ok(None);
    };
    Ok(acme.certificate(&host).map(|tls| {
        format!(
            "the certificate of {host} is kept in `{}` until it expires: a site deployed on \
             {host} again is served over HTTPS at once",
            tls.certificate.parent().unwrap_or(&acme.dir).display()
        )
    }))
}
