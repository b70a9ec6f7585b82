//! An [`Engine`] kept in memory, for the unit tests of what sits above the runtime (the local
//! runner, the orchestrator). It loads real image archives (so their checks run), and plays
//! containers from a script: what each image prints, whether it exits, its health, and
//! what the commands run in them answer.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use super::types::*;
use super::{Engine, Error};

/// How the containers of one image behave once started.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// What the container prints.
    pub logs: Vec<LogLine>,
    /// Exits at once with this code.
    pub exits_with: Option<i64>,
    /// The health Docker reports once started (`None`: no health check).
    pub health: Option<Health>,
}

/// A command run with [`Engine::exec_stream`]: where, what, and the input it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamedExec {
    pub container: String,
    pub exec: Exec,
    /// All of its standard input, when it was given one.
    pub stdin: Option<Vec<u8>>,
}

#[derive(Debug, Default)]
struct World {
    images: BTreeMap<String, ImageDetails>,
    files: BTreeMap<(String, String), Vec<u8>>,
    scripts: BTreeMap<String, Script>,
    volumes: BTreeMap<String, VolumeSpec>,
    networks: BTreeMap<String, Labels>,
    containers: BTreeMap<String, (ContainerSpec, ContainerInfo)>,
    /// Host ports someone else holds.
    busy: HashSet<u16>,
    /// What commands answer, by the first words of their command.
    answers: Vec<(Vec<String>, ExecOutput)>,
    streamed: Vec<StreamedExec>,
    /// Archives written into containers, by container name at the time.
    put: Vec<(String, Vec<u8>)>,
    /// Containers started with an entrypoint of their own (IDs): they wait for a signal
    /// before they play their image's script.
    held: HashSet<String>,
    calls: Vec<String>,
}

impl World {
    /// The reference an image is known under: `image` itself, or one whose ID it is.
    fn reference_of<'a>(&'a self, image: &'a str) -> Option<&'a str> {
        if self.images.contains_key(image) {
            return Some(image);
        }
        self.images
            .iter()
            .find(|(_, details)| !details.id.is_empty() && details.id == image)
            .map(|(reference, _)| reference.as_str())
    }

    /// How containers of `image` (a reference or an ID) behave.
    fn script_for(&self, image: &str) -> Script {
        self.reference_of(image)
            .and_then(|reference| self.scripts.get(reference))
            .cloned()
            .unwrap_or_default()
    }

    fn container(&self, name: &str) -> Result<(ContainerSpec, ContainerInfo), Error> {
        self.containers
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NoSuchContainer {
                name: name.to_owned(),
            })
    }
}

/// The in-memory engine.
#[derive(Debug, Default)]
pub struct FakeEngine {
    world: Mutex<World>,
}

impl FakeEngine {
    pub fn new() -> FakeEngine {
        FakeEngine::default()
    }

    /// Add an image the engine has, under `reference`.
    pub fn add_image(&self, reference: &str, image: ImageDetails) {
        self.world().images.insert(reference.to_owned(), image);
    }

    /// Put a file in an image.
    pub fn add_file(&self, image: &str, path: &str, content: &[u8]) {
        self.world()
            .files
            .insert((image.to_owned(), path.to_owned()), content.to_vec());
    }

    /// How containers of `image` behave.
    pub fn script(&self, image: &str, script: Script) {
        self.world().scripts.insert(image.to_owned(), script);
    }

    /// Make a host port busy, as another program would.
    pub fn hold_port(&self, port: u16) {
        self.world().busy.insert(port);
    }

    /// What the commands that start with the words `prefix` (`["pg_dump"]`, or
    /// `["sh", "-c", "…"]` exactly) print and how they exit, with [`Engine::exec`] and
    /// [`Engine::exec_stream`] alike. The longest prefix that matches answers; a command no
    /// prefix matches prints nothing and exits with 0.
    pub fn answer_exec(&self, prefix: &[&str], output: ExecOutput) {
        let prefix = prefix.iter().map(|w| (*w).to_owned()).collect();
        self.world().answers.push((prefix, output));
    }

    /// The commands run with [`Engine::exec_stream`] so far, oldest first.
    pub fn streamed(&self) -> Vec<StreamedExec> {
        self.world().streamed.clone()
    }

    /// The calls made so far, as `verb name` strings.
    pub fn calls(&self) -> Vec<String> {
        self.world().calls.clone()
    }

    /// The spec a container was created with.
    pub fn spec(&self, name: &str) -> Option<ContainerSpec> {
        self.world().containers.get(name).map(|(s, _)| s.clone())
    }

    pub fn volume_names(&self) -> Vec<String> {
        self.world().volumes.keys().cloned().collect()
    }

    /// The archives written into containers with [`Engine::put_files`]: (container, archive).
    pub fn put_archives(&self) -> Vec<(String, Vec<u8>)> {
        self.world().put.clone()
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn call(&self, what: String) {
        self.world().calls.push(what);
    }
}

/// What a started container of `spec` does, as `script` says.
fn play(script: &Script, spec: &ContainerSpec, info: &mut ContainerInfo) {
    match script.exits_with {
        // Docker restarts it at once: it is seen running again, once more restarted.
        Some(code) if spec.restart != Restart::No => {
            info.state = State::Running;
            info.exit_code = Some(code);
            info.restart_count += 1;
        }
        Some(code) => {
            info.state = State::Exited;
            info.exit_code = Some(code);
        }
        None => info.state = State::Running,
    }
    info.health = if spec.no_health_check {
        None
    } else {
        script.health.clone()
    };
}

impl Engine for FakeEngine {
    fn load_image(&self, path: &Path, _options: LoadOptions) -> Result<Loaded, Error> {
        let (_, info) = super::load::open_image(path)?;
        let details = ImageDetails {
            id: info.config_descriptor.digest.to_string(),
            tags: info.names.clone(),
            diff_ids: super::load::diff_ids(&info),
            ..ImageDetails::default()
        };
        let mut world = self.world();
        world.calls.push(format!("load {}", path.display()));
        for name in &info.names {
            world.images.insert(name.clone(), details.clone());
        }
        Ok(Loaded {
            tags: info.names.clone(),
            image_id: details.id,
            bytes_sent: std::fs::metadata(path).map_or(0, |m| m.len()),
            layers: info.layers.len(),
            layers_sent: info.layers.len(),
            fell_back: None,
        })
    }

    fn image(&self, reference: &str) -> Result<Option<ImageDetails>, Error> {
        Ok(self.world().images.get(reference).cloned())
    }

    fn remove_image(&self, reference: &str) -> Result<(), Error> {
        let mut world = self.world();
        world.calls.push(format!("remove image {reference}"));
        world
            .images
            .retain(|name, image| name != reference && image.id != reference);
        Ok(())
    }

    fn read_image_file(&self, image: &str, path: &str) -> Result<Option<Vec<u8>>, Error> {
        let world = self.world();
        if !world.images.contains_key(image) {
            return Err(Error::NoSuchImage {
                reference: image.to_owned(),
            });
        }
        Ok(world
            .files
            .get(&(image.to_owned(), path.to_owned()))
            .cloned())
    }

    fn create_volume(&self, spec: &VolumeSpec) -> Result<(), Error> {
        self.call(format!("create volume {}", spec.name));
        self.world()
            .volumes
            .entry(spec.name.clone())
            .or_insert_with(|| spec.clone());
        Ok(())
    }

    fn volumes(&self, label: &str, value: &str) -> Result<Vec<String>, Error> {
        Ok(self
            .world()
            .volumes
            .values()
            .filter(|v| v.labels.get(label).map(String::as_str) == Some(value))
            .map(|v| v.name.clone())
            .collect())
    }

    fn remove_volume(&self, name: &str) -> Result<(), Error> {
        self.call(format!("remove volume {name}"));
        self.world().volumes.remove(name);
        Ok(())
    }

    fn create_network(&self, name: &str, labels: &Labels) -> Result<(), Error> {
        self.world()
            .networks
            .entry(name.to_owned())
            .or_insert_with(|| labels.clone());
        Ok(())
    }

    fn remove_network(&self, name: &str) -> Result<(), Error> {
        self.world().networks.remove(name);
        Ok(())
    }

    fn create_container(&self, spec: &ContainerSpec) -> Result<String, Error> {
        let mut world = self.world();
        world.calls.push(format!("create {}", spec.name));
        if world.containers.contains_key(&spec.name) {
            return Err(Error::NameTaken {
                name: spec.name.clone(),
            });
        }
        if world.reference_of(&spec.image).is_none() {
            return Err(Error::NoSuchImage {
                reference: spec.image.clone(),
            });
        }
        let id = format!("{:064x}", world.calls.len());
        let info = ContainerInfo {
            id: id.clone(),
            name: spec.name.clone(),
            image: spec.image.clone(),
            state: State::Created,
            exit_code: None,
            restart_count: 0,
            health: None,
            ports: spec.ports.clone(),
            labels: spec.labels.clone(),
        };
        world
            .containers
            .insert(spec.name.clone(), (spec.clone(), info));
        Ok(id)
    }

    fn start_container(&self, name: &str) -> Result<(), Error> {
        let mut world = self.world();
        world.calls.push(format!("start {name}"));
        let busy = world.busy.clone();
        let (spec, info) = world.container(name)?;
        if let Some(port) = spec.ports.iter().find(|p| busy.contains(&p.host)) {
            return Err(Error::PortTaken { port: port.host });
        }
        let script = world.script_for(&spec.image);
        let mut info = info;
        // Host port 0: the engine chooses one as the container starts.
        for (i, port) in info.ports.iter_mut().enumerate() {
            if port.host == 0 {
                port.host = 49152 + world.calls.len() as u16 * 8 + i as u16;
            }
        }
        if spec.entrypoint.is_some() {
            info.state = State::Running;
            world.held.insert(info.id.clone());
        } else {
            play(&script, &spec, &mut info);
        }
        world.containers.insert(name.to_owned(), (spec, info));
        Ok(())
    }

    fn put_files(&self, name: &str, archive: &[u8]) -> Result<(), Error> {
        let mut world = self.world();
        world.calls.push(format!("put {name}"));
        if !world.containers.contains_key(name) {
            return Err(Error::NoSuchContainer {
                name: name.to_owned(),
            });
        }
        world.put.push((name.to_owned(), archive.to_vec()));
        Ok(())
    }

    /// A container started with an entrypoint of its own plays its image's script on its
    /// first signal; any other signal is recorded only.
    fn signal_container(&self, name: &str, signal: &str) -> Result<(), Error> {
        let mut world = self.world();
        world.calls.push(format!("signal {name} {signal}"));
        let (spec, mut info) = world.container(name)?;
        if world.held.remove(&info.id) {
            let script = world.script_for(&spec.image);
            play(&script, &spec, &mut info);
            world.containers.insert(name.to_owned(), (spec, info));
        }
        Ok(())
    }

    fn stop_container(&self, name: &str, _timeout: Duration) -> Result<(), Error> {
        let mut world = self.world();
        world.calls.push(format!("stop {name}"));
        let (_, info) = world
            .containers
            .get_mut(name)
            .ok_or_else(|| Error::NoSuchContainer {
                name: name.to_owned(),
            })?;
        if info.state == State::Running {
            info.state = State::Exited;
            info.exit_code = Some(0);
        }
        Ok(())
    }

    fn rename_container(&self, name: &str, to: &str) -> Result<(), Error> {
        let mut world = self.world();
        world.calls.push(format!("rename {name} {to}"));
        if world.containers.contains_key(to) {
            return Err(Error::NameTaken {
                name: to.to_owned(),
            });
        }
        let (mut spec, mut info) =
            world
                .containers
                .remove(name)
                .ok_or_else(|| Error::NoSuchContainer {
                    name: name.to_owned(),
                })?;
        spec.name = to.to_owned();
        info.name = to.to_owned();
        world.containers.insert(to.to_owned(), (spec, info));
        Ok(())
    }

    fn set_paused(&self, name: &str, paused: bool) -> Result<(), Error> {
        let mut world = self.world();
        world.calls.push(format!(
            "{} {name}",
            if paused { "pause" } else { "unpause" }
        ));
        let (_, info) = world
            .containers
            .get_mut(name)
            .ok_or_else(|| Error::NoSuchContainer {
                name: name.to_owned(),
            })?;
        info.state = match (info.state, paused) {
            (State::Running, true) => State::Paused,
            (State::Paused, false) => State::Running,
            (state, _) => state,
        };
        Ok(())
    }

    fn remove_container(&self, name: &str) -> Result<(), Error> {
        let mut world = self.world();
        world.calls.push(format!("remove {name}"));
        world
            .containers
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| Error::NoSuchContainer {
                name: name.to_owned(),
            })
    }

    fn container(&self, name: &str) -> Result<Option<ContainerInfo>, Error> {
        Ok(self.world().containers.get(name).map(|(_, i)| i.clone()))
    }

    fn containers(&self, label: &str) -> Result<Vec<ContainerInfo>, Error> {
        Ok(self
            .world()
            .containers
            .values()
            .filter(|(_, i)| i.labels.contains_key(label))
            .map(|(_, i)| i.clone())
            .collect())
    }

    fn logs(
        &self,
        name: &str,
        options: LogOptions,
        sink: &mut dyn FnMut(LogLine) -> ControlFlow<()>,
    ) -> Result<(), Error> {
        let lines = {
            let world = self.world();
            let (spec, _) = world
                .containers
                .get(name)
                .ok_or_else(|| Error::NoSuchContainer {
                    name: name.to_owned(),
                })?;
            world
                .scripts
                .get(&spec.image)
                .map(|s| s.logs.clone())
                .unwrap_or_default()
        };
        let skip = options
            .tail
            .map_or(0, |n| lines.len().saturating_sub(n as usize));
        for line in lines.into_iter().skip(skip) {
            if sink(line).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn exec(&self, name: &str, command: &[&str]) -> Result<ExecOutput, Error> {
        self.call(format!("exec {name} {}", command.join(" ")));
        Ok(self.answer(command))
    }

    fn exec_stream(
        &self,
        name: &str,
        exec: &Exec,
        stdin: Option<&mut (dyn Read + Send)>,
        stdout: &mut (dyn Write + Send),
    ) -> Result<ExecStatus, Error> {
        self.call(format!("exec {name} {}", exec.command.join(" ")));
        if !self.world().containers.contains_key(name) {
            return Err(Error::NoSuchContainer {
                name: name.to_owned(),
            });
        }
        let stream = |input, source| Error::Stream {
            container: name.to_owned(),
            program: exec.program().to_owned(),
            input,
            source,
        };
        let stdin = match stdin {
            Some(reader) => {
                let mut input = Vec::new();
                reader
                    .read_to_end(&mut input)
                    .map_err(|e| stream(true, e))?;
                Some(input)
            }
            None => None,
        };
        self.world().streamed.push(StreamedExec {
            container: name.to_owned(),
            exec: exec.clone(),
            stdin,
        });
        let command: Vec<&str> = exec.command.iter().map(String::as_str).collect();
        let answer = self.answer(&command);
        stdout
            .write_all(&answer.stdout)
            .and_then(|()| stdout.flush())
            .map_err(|e| stream(false, e))?;
        let mut status = ExecStatus {
            exit_code: answer.exit_code,
            stderr: Vec::new(),
        };
        status.push_stderr(&answer.stderr);
        Ok(status)
    }
}

impl FakeEngine {
    fn answer(&self, command: &[&str]) -> ExecOutput {
        self.world()
            .answers
            .iter()
            .filter(|(prefix, _)| {
                prefix.len() <= command.len() && prefix.iter().zip(command).all(|(p, c)| p == c)
            })
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, output)| output.clone())
            .unwrap_or(ExecOutput {
                exit_code: 0,
                stdout: Vec::new(),
                stderr: Vec::new(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(engine: &FakeEngine, name: &str) {
        engine.add_image("app:1", ImageDetails::default());
        let spec = ContainerSpec {
            name: name.to_owned(),
            image: "app:1".to_owned(),
            ..ContainerSpec::default()
        };
        engine.create_container(&spec).unwrap();
        engine.start_container(name).unwrap();
    }

    #[test]
    fn a_streamed_exec_gets_its_input_and_gives_its_canned_output() {
        let engine = FakeEngine::new();
        running(&engine, "db");
        engine.answer_exec(
            &["pg_dump"],
            ExecOutput {
                exit_code: 0,
                stdout: b"dump".to_vec(),
                stderr: b"done".to_vec(),
            },
        );
        let exec = Exec {
            command: vec!["pg_dump".into(), "app".into()],
            env: vec!["PGPASSWORD=secret".into()],
            user: Some("postgres".into()),
        };
        let mut out = Vec::new();
        let status = engine
            .exec_stream("db", &exec, Some(&mut &b"in"[..]), &mut out)
            .unwrap();
        assert_eq!(out, b"dump");
        assert_eq!(status.exit_code, 0);
        assert_eq!(status.stderr, b"done");
        assert_eq!(
            engine.streamed(),
            [StreamedExec {
                container: "db".into(),
                exec,
                stdin: Some(b"in".to_vec()),
            }]
        );
        assert!(engine.calls().contains(&"exec db pg_dump app".to_owned()));
        // Another program prints nothing and succeeds.
        let status = engine
            .exec_stream("db", &Exec::new(["true"]), None, &mut out)
            .unwrap();
        assert_eq!((status.exit_code, out.len()), (0, 4));
    }

    #[test]
    fn the_longest_prefix_that_matches_a_command_answers_it() {
        let engine = FakeEngine::new();
        running(&engine, "db");
        let exits = |code| ExecOutput {
            exit_code: code,
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        engine.answer_exec(&["sh", "-c", "pg_dump app"], exits(2));
        engine.answer_exec(&["sh"], exits(1));
        let code = |command: &[&str]| {
            let exec = Exec::new(command.iter().copied());
            let streamed = engine.exec_stream("db", &exec, None, &mut Vec::new());
            let collected = engine.exec("db", command).unwrap();
            assert_eq!(streamed.unwrap().exit_code, collected.exit_code);
            collected.exit_code
        };
        assert_eq!(code(&["sh", "-c", "pg_dump app"]), 2);
        assert_eq!(code(&["sh", "-c", "true"]), 1);
        assert_eq!(code(&["sh"]), 1);
        assert_eq!(code(&["pg_dump"]), 0);
    }

    #[test]
    fn a_streamed_exec_names_a_container_that_is_not_there() {
        let engine = FakeEngine::new();
        let err = engine
            .exec_stream("nope", &Exec::new(["true"]), None, &mut Vec::new())
            .unwrap_err();
        assert!(matches!(err, Error::NoSuchContainer { name } if name == "nope"));
    }

    #[test]
    fn a_failed_output_names_the_container_and_program() {
        struct Gone;
        impl Write for Gone {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let engine = FakeEngine::new();
        running(&engine, "db");
        engine.answer_exec(
            &["pg_dump"],
            ExecOutput {
                exit_code: 0,
                stdout: b"dump".to_vec(),
                stderr: Vec::new(),
            },
        );
        let err = engine
            .exec_stream("db", &Exec::new(["pg_dump", "app"]), None, &mut Gone)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot write the output of `pg_dump` run in the container `db`"
        );
        assert!(matches!(err, Error::Stream { input: false, .. }));
    }
}
