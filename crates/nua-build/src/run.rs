//! Running an app's commands in the sandbox: the dependency and build steps (whose changes
//! become a layer) and the tests (which change nothing).
//!
//! Every command gets the same world: the image's variables, `HOME=/nua`,
//! `SOURCE_DATE_EPOCH` (so Python writes hash-based `.pyc` files that do not depend on the
//! time of the build), the host's network, the host's CA bundle mounted read-only and named
//! by the variables pip, requests, Node, git and curl read, and package caches shared by
//! every build on this machine, mounted writable outside the root so that nothing of them
//! reaches a layer.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::layers::{BaseOptions, Chain, Tail};
use super::{Error, Event, Reporter};
use crate::metadata::{NUA_GID, NUA_UID};
use nua_oci as oci;
use nua_sandbox::{self as sandbox, Bind, Command, Network, Root};

/// A build or test command gets this long before it is killed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// Where the CA bundle is seen inside the sandbox.
const CA_TARGET: &str = "/run/nua/ca-certificates.crt";

/// The variables that point TLS clients at a CA bundle.
const CA_VARIABLES: &[&str] = &[
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "PIP_CERT",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
    "CURL_CA_BUNDLE",
];

/// Package caches shared by builds: (folder under `<cache>/packages`, target, variables).
const SHARED_CACHES: &[(&str, &str, &[&str])] = &[
    ("pip", "/var/cache/nua/pip", &["PIP_CACHE_DIR"]),
    ("uv", "/var/cache/nua/uv", &["UV_CACHE_DIR"]),
    ("npm", "/var/cache/nua/npm", &["npm_config_cache"]),
    ("yarn", "/var/cache/nua/yarn", &["YARN_CACHE_FOLDER"]),
];

/// What the tools leave in `$HOME` or system folders that is a cache or a log, never part
/// of the app: left out of the layer (not even a whiteout, so what the base has stays).
const LEFTOVERS: &[&str] = &[
    "/nua/.cache",
    "/nua/.config/configstore",
    "/nua/.node-gyp",
    "/nua/.npm",
    "/nua/.yarnrc",
    // uv's lock of the environment it installs into (`crate::uv`).
    "/nua/venv/.lock",
    "/root/.cache",
    "/root/.node-gyp",
    "/root/.npm",
    "/var/cache/apt",
    "/var/cache/debconf/config.dat-old",
    "/var/cache/debconf/passwords.dat-old",
    "/var/cache/debconf/templates.dat-old",
    "/var/lib/apt/lists",
    "/var/log/apt",
];

/// The machine's trust store: the first of the usual bundle paths of Debian, Fedora and
/// Alpine that exists (the CLI gives `SSL_CERT_FILE` precedence).
pub fn host_ca_bundle() -> Option<PathBuf> {
    [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ]
    .map(PathBuf::from)
    .into_iter()
    .find(|p| p.is_file())
}

/// The world of an app's commands (see the module documentation).
pub struct World {
    pub env: Vec<(String, String)>,
    pub mounts: Vec<Bind>,
}

impl World {
    /// `image_env` is the image's variables (`KEY=VALUE`); `ca` the bundle to mount.
    pub fn new(
        image_env: &[String],
        epoch: u64,
        ca: Option<&Path>,
        caches: Option<&Path>,
    ) -> World {
        let mut env: Vec<(String, String)> = image_env
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let mut set = |k: &str, v: &str| {
            env.retain(|(key, _)| key != k);
            env.push((k.to_owned(), v.to_owned()));
        };
        set("HOME", "/nua");
        set("USER", "nua");
        set("SOURCE_DATE_EPOCH", &epoch.to_string());
        set("CI", "true");
        set("PIP_DISABLE_PIP_VERSION_CHECK", "1");
        set("PIP_NO_INPUT", "1");
        set("PIP_PROGRESS_BAR", "off");
        set("npm_config_update_notifier", "false");
        set("npm_config_fund", "false");
        set("npm_config_audit", "false");
        set("npm_config_progress", "false");
        let mut mounts = Vec::new();
        if let Some(ca) = ca {
            for name in CA_VARIABLES {
                set(name, CA_TARGET);
            }
            mounts.push(Bind::read_only(ca, CA_TARGET));
        }
        if let Some(caches) = caches {
            for (dir, target, variables) in SHARED_CACHES {
                for name in *variables {
                    set(name, target);
                }
                mounts.push(Bind::writable(caches.join(dir), *target));
            }
        } else {
            set("PIP_NO_CACHE_DIR", "1");
            set("UV_NO_CACHE", "1");
        }
        World { env, mounts }
    }

    /// The variables that decide what commands do, for cache keys: all but those naming the
    /// CA bundle and the package caches, which are where they are on every machine and change
    /// how things are fetched, not what is installed.
    pub fn key_env(&self) -> Vec<(&str, &str)> {
        let machine: Vec<&str> = CA_VARIABLES
            .iter()
            .copied()
            .chain(
                SHARED_CACHES
                    .iter()
                    .flat_map(|(_, _, vars)| vars.iter().copied()),
            )
            .chain(["PIP_NO_CACHE_DIR", "UV_NO_CACHE"])
            .collect();
        let mut env: Vec<(&str, &str)> = self
            .env
            .iter()
            .filter(|(k, _)| !machine.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.sort();
        env
    }

    /// Make the shared cache folders, owned by `nua` inside the sandbox.
    pub fn prepare(&self, sandbox: &sandbox::Sandbox) -> sandbox::Result<()> {
        for bind in self.mounts.iter().filter(|b| b.writable) {
            sandbox.shared_dir(&bind.source, (NUA_UID, NUA_GID))?;
        }
        Ok(())
    }

    fn command(&self, script: &str, as_root: bool) -> Command {
        let mut command = Command::shell(script);
        command.env = self.env.clone();
        command.mounts = self.mounts.clone();
        command.cwd = super::metadata::APP_DIR.to_owned();
        command.user = if as_root { (0, 0) } else { (NUA_UID, NUA_GID) };
        command.timeout = Some(COMMAND_TIMEOUT);
        command
    }
}

/// One command of a step, for [`run_commands`].
pub struct Job<'a> {
    pub command: &'a str,
    pub as_root: bool,
    /// Shown as `$ command` before its output (not the sandbox's own chores).
    pub shown: bool,
}

/// Run `jobs` in order in `root`, streaming their output; the first failure stops the step
/// with the command and its last lines.
pub fn run_commands(
    root: &mut Root,
    world: &World,
    step: &str,
    jobs: &[Job<'_>],
    extra: &[Bind],
    network: Network,
    reporter: &mut dyn Reporter,
) -> Result<(), Error> {
    for job in jobs {
        if job.shown {
            let line = format!("$ {}", job.command);
            reporter.event(Event::Output { line: &line });
        }
        let mut command = world.command(job.command, job.as_root);
        command.mounts.extend(extra.iter().cloned());
        command.network = network;
        let mut tail = Tail::default();
        let status = root
            .run(&command, &mut |_, line| {
                tail.push(line);
                reporter.event(Event::Output { line });
            })
            .map_err(|source| Error::Sandbox {
                step: step.to_owned(),
                source: Box::new(source),
            })?;
        if !status.success() {
            return Err(Error::StepFailed {
                step: step.to_owned(),
                command: job.command.to_owned(),
                status: status.to_string(),
                tail: tail.text(),
            });
        }
    }
    Ok(())
}

/// A step that runs `jobs` on `chain` and keeps what they changed as a layer.
#[allow(clippy::too_many_arguments)]
pub fn layer_step(
    chain: &mut Chain,
    sandbox_options: &BaseOptions,
    store: &oci::BlobStore,
    world: &World,
    step: &str,
    jobs: &[Job<'_>],
    extra: &[Bind],
    reporter: &mut dyn Reporter,
) -> Result<oci::Layer, Error> {
    let below = chain.only_layers();
    let sandbox_error = |source| Error::Sandbox {
        step: step.to_owned(),
        source: Box::new(source),
    };
    let sandbox = chain
        .sandbox(sandbox_options, store, reporter)
        .map_err(sandbox_error)?;
    world.prepare(sandbox).map_err(sandbox_error)?;
    let mut root = sandbox.root(&below).map_err(sandbox_error)?;
    run_commands(&mut root, world, step, jobs, extra, Network::Host, reporter)?;
    root.commit_without(&sandbox_options.layer, LEFTOVERS)
        .map_err(sandbox_error)
}
