//! The proxy on a swarm: Nua's nginx image as the Swarm service `nua-proxy`, on the overlay
//! network `nua-proxy` that every app with a domain joins, so that nginx reaches each app by
//! its service's name through Docker's DNS. The host cannot route into overlay networks,
//! which is why nginx runs there and not on the host.
//!
//! It runs on this manager node and publishes the HTTP and HTTPS ports there in host mode
//! (Swarm's routing mesh needs IPVS, which not every kernel has). Its files are Nua's proxy
//! folder, the certificates and the operator's include, mounted at the paths they have on
//! this node, so that the configuration Nua writes and checks names them as nginx sees
//! them; `nginx -t` and `nginx -s reload` run in its task.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nua_runtime::swarm::{HostPort, Order, ServiceSpec, TaskState};
use nua_runtime::{ContainerSpec, Engine, Labels, Mount, Restart, State, Swarm};
use sha2::{Digest as _, Sha256};

use super::nginx::{Error, Task};

/// The proxy's service, and its overlay network.
pub const SERVICE: &str = "nua-proxy";
pub const NETWORK: &str = "nua-proxy";
/// The label on both.
pub const LABEL: &str = "nua.proxy";

/// The label of the proxy's service that says which settings it runs with.
const SPEC: &str = "nua.spec";

/// `nginx ARGS -s reload` in the task, done once a new worker runs and each old one has
/// gone or is shutting down (its title says so before it closes its listening sockets), as
/// nginx on the host is reloaded; 5 s at most. nginx is the task's PID 1: its workers are
/// the processes whose parent is 1.
const RELOAD: &str = r#"workers() {
    for stat in /proc/[0-9]*/stat; do
        read -r pid comm state ppid rest <"$stat" 2>/dev/null || continue
        [ "$ppid" = 1 ] && printf ' %s ' "$pid"
    done
}
before=$(workers)
nginx "$@" -s reload || exit 1
i=0
while [ "$i" -lt 250 ]; do
    now=$(workers)
    new=
    retired=yes
    for p in $now; do
        case "$before" in *" $p "*) ;; *) new=yes ;; esac
    done
    for p in $before; do
        case "$now" in
        *" $p "*) grep -q 'shutting down' "/proc/$p/cmdline" 2>/dev/null || retired= ;;
        esac
    done
    [ -n "$new" ] && [ -n "$retired" ] && exit 0
    sleep 0.02
    i=$((i + 1))
done
"#;

/// How long the proxy's task has to start.
const START: Duration = Duration::from_secs(60);

/// The Swarm service `nua-proxy`, as the [`super::nginx::Nginx`] of a swarm runs it.
pub struct SwarmProxy {
    pub engine: Arc<dyn Engine + Send + Sync>,
    pub swarm: Arc<dyn Swarm + Send + Sync>,
    /// Nua's nginx image, as the engine names it: asked for only when a container or the
    /// service is made (building it takes a while); the message when it cannot be had.
    pub image: Box<dyn Fn() -> Result<String, String> + Send + Sync>,
    /// Folders and files of this node the task sees at the same paths: the proxy's folder
    /// (written by nginx: logs, pid, temporary files), then read-only ones.
    pub dir: PathBuf,
    pub read_only: Vec<PathBuf>,
    pub http_port: u16,
    pub https_port: u16,
}

impl SwarmProxy {
    fn mounts(&self) -> Vec<Mount> {
        let bind = |path: &Path, read_only| Mount::Bind {
            source: path.to_path_buf(),
            target: path.display().to_string(),
            read_only,
        };
        let mut mounts = vec![bind(&self.dir, false)];
        mounts.extend(self.read_only.iter().map(|p| bind(p, true)));
        mounts
    }

    /// The container of the proxy's running task on this node.
    fn task_container(&self) -> Result<Option<String>, Error> {
        let node = self.swarm.manager().map_err(engine)?.unwrap_or_default();
        let tasks = self.swarm.tasks(SERVICE).map_err(engine)?;
        Ok(tasks
            .into_iter()
            .find(|t| {
                t.node == node && t.desired == TaskState::Running && t.state == TaskState::Running
            })
            .and_then(|t| t.container))
    }

    /// `COMMAND ARGS` in `container`; what it wrote on stderr when it fails.
    fn exec(
        &self,
        container: &str,
        command: &[&str],
        args: &[String],
    ) -> Result<Result<(), String>, Error> {
        let mut argv = command.to_vec();
        argv.extend(args.iter().map(String::as_str));
        let out = self.engine.exec(container, &argv).map_err(engine)?;
        Ok(if out.exit_code == 0 {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        })
    }

    /// `nginx ARGS` in a container of the image made for it (no task runs yet), removed after.
    fn once(&self, args: &[String]) -> Result<Result<(), String>, Error> {
        let name = format!("nua-proxy-check-{}", std::process::id());
        let _ = self.engine.remove_container(&name);
        let mut command = vec!["nginx".to_owned()];
        command.extend(args.iter().cloned());
        let spec = ContainerSpec {
            name: name.clone(),
            image: (self.image)().map_err(|message| Error::Start { message })?,
            mounts: self.mounts(),
            network: Some("none".to_owned()),
            entrypoint: Some(command),
            command: Some(Vec::new()),
            ..ContainerSpec::default()
        };
        let ran = (|| {
            self.engine.create_container(&spec)?;
            self.engine.start_container(&name)?;
            let until = Instant::now() + START;
            loop {
                let info = self.engine.container(&name)?;
                match info {
                    Some(i) if matches!(i.state, State::Exited | State::Dead) => {
                        return Ok(i.exit_code.unwrap_or(-1));
                    }
                    _ if Instant::now() > until => return Ok(-1),
                    _ => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        })();
        let mut lines = Vec::new();
        let options = nua_runtime::LogOptions {
            follow: false,
            tail: Some(20),
        };
        let _ = self.engine.logs(&name, options, &mut |line| {
            lines.push(line.text);
            std::ops::ControlFlow::Continue(())
        });
        let _ = self.engine.remove_container(&name);
        match ran.map_err(engine)? {
            0 => Ok(Ok(())),
            _ => Ok(Err(lines.join("\n"))),
        }
    }
}

fn engine(e: nua_runtime::Error) -> Error {
    Error::Start {
        message: e.to_string(),
    }
}

impl Task for SwarmProxy {
    fn nginx(&self, args: &[String]) -> Result<Result<(), String>, Error> {
        let Some(container) = self.task_container()? else {
            return self.once(args);
        };
        self.exec(&container, &["nginx"], args)
    }

    fn running(&self) -> Result<bool, Error> {
        Ok(self.task_container()?.is_some())
    }

    fn ensure(&self, main: &Path) -> Result<bool, Error> {
        let labels = Labels::from([(LABEL.to_owned(), "swarm".to_owned())]);
        let node = self.swarm.manager().map_err(engine)?.unwrap_or_default();
        let errors = self.dir.join("logs/error.log");
        let mut spec = ServiceSpec {
            name: SERVICE.to_owned(),
            labels: labels.clone(),
            networks: vec![(NETWORK.to_owned(), Vec::new())],
            mounts: self.mounts(),
            entrypoint: Some(vec!["nginx".to_owned()]),
            command: Some(vec![
                "-p".to_owned(),
                self.dir.display().to_string(),
                "-e".to_owned(),
                errors.display().to_string(),
                "-c".to_owned(),
                main.display().to_string(),
                "-g".to_owned(),
                "daemon off;".to_owned(),
            ]),
            constraints: vec![format!("node.id=={node}")],
            replicas: 1,
            // Started again whenever it stops (a restart of Docker stops every task).
            restart: Restart::Always,
            // Its ports are the node's: two tasks cannot hold them at once.
            order: Order::StopFirst,
            monitor: Duration::from_secs(1),
            stop_grace: Duration::from_secs(10),
            host_ports: vec![
                HostPort {
                    container: self.http_port,
                    host: self.http_port,
                },
                HostPort {
                    container: self.https_port,
                    host: self.https_port,
                },
            ],
            ..ServiceSpec::default()
        };
        // What it runs with, but its image (built again, it has the same tag or a newer
        // one): a change is a restart.
        let digest = {
            let mut hasher = Sha256::new();
            hasher.update(format!("{spec:?}").as_bytes());
            hex::encode(&hasher.finalize()[..16])
        };
        spec.labels.insert(SPEC.to_owned(), digest.clone());
        let existing = self.swarm.service(SERVICE).map_err(engine)?;
        if existing.is_some_and(|s| s.labels.get(SPEC) == Some(&digest)) && self.running()? {
            return Ok(false);
        }
        spec.image = (self.image)().map_err(|message| Error::Start { message })?;
        self.swarm
            .create_overlay(NETWORK, &labels)
            .map_err(engine)?;
        self.swarm.put_service(&spec).map_err(engine)?;
        let until = Instant::now() + START;
        loop {
            let tasks = self.swarm.tasks(SERVICE).map_err(engine)?;
            let serving = tasks.iter().any(|t| {
                t.node == node
                    && t.desired == TaskState::Running
                    && t.state == TaskState::Running
                    && t.digest.as_deref() == Some(digest.as_str())
            });
            if serving {
                return Ok(true);
            }
            if Instant::now() > until {
                let why = tasks
                    .iter()
                    .find(|t| t.digest.as_deref() == Some(digest.as_str()))
                    .map_or_else(
                        || "no task was made".to_owned(),
                        |t| t.error.clone().unwrap_or_else(|| t.message.clone()),
                    );
                return Err(Error::Start {
                    message: format!(
                        "the service `{SERVICE}` has no running task after {}s ({why})",
                        START.as_secs()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn reload(&self, args: &[String]) -> Result<Result<(), String>, Error> {
        let Some(container) = self.task_container()? else {
            return Ok(Err(format!("the service `{SERVICE}` has no running task")));
        };
        self.exec(&container, &["sh", "-c", RELOAD, "reload"], args)
    }
}
