//! [`Held`] on the in-memory engine: which containers exist after a start, a replacement
//! that takes over, and one that does not. (The relay's forwarding is tested on real sockets
//! in `relay`, and the whole on Docker in `tests/watch.rs`.)

use std::collections::BTreeMap;
use std::net::TcpListener;

use super::*;
use crate::testing::{config, APP, IMAGE};
use nua_runtime::fake::{FakeEngine, Script};
use nua_runtime::{ExecOutput, ImageDetails, LogLine, Stream};

const V2: &str = "nua-app:1.0-2";
const WEB: &str = "[port.web]\ncontainer = 8000\n";
const CHECK: &str = "curl -f localhost:8000";

/// Host ports of this machine that are free now (the relay binds them for real).
struct Free;

impl HostPorts for Free {
    fn is_free(&self, _port: u16, _protocol: Protocol) -> bool {
        false
    }

    fn any_free(&self, _protocol: Protocol, _not: &[u16]) -> Option<u16> {
        Some(
            TcpListener::bind("127.0.0.1:0")
                .ok()?
                .local_addr()
                .ok()?
                .port(),
        )
    }
}

fn details(health: bool) -> ImageDetails {
    ImageDetails {
        health_check: health.then(|| vec!["CMD-SHELL".into(), CHECK.into()]),
        entrypoint: vec!["/entry".into()],
        cmd: vec!["/nua/scripts/start".into(), "--quick".into()],
        ..ImageDetails::default()
    }
}

/// An image's details, its ID made of its name.
fn details_of(image: &str) -> ImageDetails {
    ImageDetails {
        id: format!("sha256:{image}"),
        ..details(true)
    }
}

fn request(image: &str, extra: &str) -> Request {
    Request {
        name: APP.into(),
        image: image.into(),
        details: details_of(image),
        config: Some(config(extra)),
        env: Vec::new(),
        host_mounts: true,
        kept: BTreeMap::new(),
    }
}

fn engine() -> FakeEngine {
    let engine = FakeEngine::new();
    engine.add_image(IMAGE, details_of(IMAGE));
    engine.add_image(V2, details_of(V2));
    engine
}

fn never() -> bool {
    false
}

fn names(engine: &FakeEngine) -> Vec<String> {
    let mut names: Vec<String> = engine
        .containers(local::APP_LABEL)
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    names.sort();
    names
}

fn started(engine: &FakeEngine) -> Held {
    let (held, plan, outcome) = Held::start(engine, &request(IMAGE, WEB), &Free, &never).unwrap();
    assert_eq!(outcome, Outcome::Healthy);
    assert_eq!(plan.published.len(), 1);
    held
}

#[test]
fn the_first_container_publishes_on_ports_docker_chooses_and_is_checked_by_exec() {
    let engine = engine();
    let held = started(&engine);
    let spec = engine.spec(APP).unwrap();
    assert_eq!(spec.ports.len(), 1);
    assert_eq!(
        spec.ports[0].host, 0,
        "the held port is Nua's, not Docker's"
    );
    assert_ne!(held.published[0].host, 0);
    assert_eq!(held.current(), Some(APP));
    let check = format!("exec {APP} /bin/sh -c {CHECK}");
    assert!(engine.calls().contains(&check), "{:?}", engine.calls());
}

#[test]
fn a_healthy_replacement_takes_over_and_the_name_then_the_old_one_is_retired() {
    let engine = engine();
    let mut held = started(&engine);
    let switched = held
        .replace(&engine, &request(V2, WEB), &never)
        .unwrap()
        .expect("the replacement serves");
    // The app's name is the new one's at once; the old one waits aside for its retirement.
    assert_eq!(held.current(), Some(APP));
    let all = names(&engine);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0], APP);
    let retired = all[1].clone();
    assert!(retired.starts_with(&format!("{APP}{OLD}")), "{retired}");
    assert_eq!(engine.container(APP).unwrap().unwrap().image, V2);
    assert_eq!(engine.container(&retired).unwrap().unwrap().image, IMAGE);

    switched.retire(&engine, Duration::from_secs(1)).unwrap();
    assert_eq!(names(&engine), [APP]);
    let calls = engine.calls();
    let renamed = calls
        .iter()
        .position(|c| c == &format!("rename {APP}{NEXT} {APP}"));
    let stopped = calls.iter().position(|c| c == &format!("stop {retired}"));
    assert!(renamed.is_some() && stopped > renamed, "{calls:?}");
}

#[test]
fn stop_ends_a_retirement_still_running_aside() {
    let engine = engine();
    let mut held = started(&engine);
    let _switched = held
        .replace(&engine, &request(V2, WEB), &never)
        .unwrap()
        .expect("the replacement serves");
    // Ctrl-C before the old one is retired: both go.
    held.stop(&engine, Duration::from_secs(1)).unwrap();
    assert!(names(&engine).is_empty(), "{:?}", names(&engine));
}

#[test]
fn a_replacement_that_exits_is_removed_and_the_old_one_serves_on() {
    let engine = engine();
    let mut held = started(&engine);
    engine.script(
        V2,
        Script {
            logs: vec![LogLine {
                stream: Stream::Stderr,
                text: "SyntaxError: invalid syntax".into(),
            }],
            exits_with: Some(3),
            ..Script::default()
        },
    );
    let outcome = match held.replace(&engine, &request(V2, WEB), &never).unwrap() {
        Ok(_) => panic!("a replacement that exited took over"),
        Err(outcome) => outcome,
    };
    match outcome {
        Outcome::Exited { code, last_lines } => {
            assert_eq!(code, 3);
            assert_eq!(last_lines[0].text, "SyntaxError: invalid syntax");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(names(&engine), [APP]);
    assert_eq!(held.current(), Some(APP));
    assert_eq!(engine.container(APP).unwrap().unwrap().image, IMAGE);
}

#[test]
fn a_replacement_whose_check_fails_until_docker_says_unhealthy_is_removed() {
    let engine = engine();
    let mut held = started(&engine);
    engine.answer_exec(
        &["/bin/sh", "-c", CHECK],
        ExecOutput {
            exit_code: 7,
            stdout: b"connection refused".to_vec(),
            stderr: Vec::new(),
        },
    );
    engine.script(
        V2,
        Script {
            health: Some(nua_runtime::Health {
                status: HealthStatus::Unhealthy,
                log: vec![CheckResult {
                    exit_code: 7,
                    output: "connection refused".into(),
                }],
            }),
            ..Script::default()
        },
    );
    let outcome = held
        .replace(&engine, &request(V2, WEB), &never)
        .unwrap()
        .err()
        .expect("an unhealthy replacement does not take over");
    match outcome {
        Outcome::Unhealthy { checks } => {
            assert!(checks.iter().any(|c| c.output == "connection refused"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(names(&engine), [APP]);
}

#[test]
fn stop_removes_the_app_and_a_left_over_replacement() {
    let engine = engine();
    let mut held = started(&engine);
    // As a `nua` killed during a replacement leaves it.
    let mut spec = engine.spec(APP).unwrap();
    spec.name = format!("{APP}{NEXT}");
    engine.create_container(&spec).unwrap();
    held.stop(&engine, Duration::from_secs(1)).unwrap();
    assert!(names(&engine).is_empty());
    assert_eq!(held.current(), None);
}

#[test]
fn udp_ports_are_refused_before_anything_is_made() {
    let engine = engine();
    let config = "[port.dns]\ncontainer = 53\nhost = \"auto\"\nprotocol = \"udp\"\n";
    let err = Held::start(&engine, &request(IMAGE, config), &Free, &never)
        .err()
        .expect("a UDP port cannot be held");
    assert!(matches!(err, Error::Udp { port: 53, .. }), "{err}");
    assert!(names(&engine).is_empty());
}

#[test]
fn health_commands_follow_dockers_forms() {
    let shell = ImageDetails {
        health_check: Some(vec!["CMD-SHELL".into(), "exit 0".into()]),
        ..ImageDetails::default()
    };
    assert_eq!(shell.health_command().unwrap(), ["/bin/sh", "-c", "exit 0"]);
    let exec = ImageDetails {
        health_check: Some(vec!["CMD".into(), "/bin/check".into(), "-q".into()]),
        ..ImageDetails::default()
    };
    assert_eq!(exec.health_command().unwrap(), ["/bin/check", "-q"]);
    assert_eq!(ImageDetails::default().health_command(), None);
}

#[test]
fn a_first_container_that_exits_is_removed_and_its_name_is_free_for_the_next() {
    let engine = engine();
    engine.script(
        IMAGE,
        Script {
            exits_with: Some(1),
            ..Script::default()
        },
    );
    let (mut held, _, outcome) = Held::start(&engine, &request(IMAGE, WEB), &Free, &never).unwrap();
    assert!(
        matches!(outcome, Outcome::Exited { code: 1, .. }),
        "{outcome:?}"
    );
    assert!(names(&engine).is_empty());
    assert_eq!(held.current(), None);
    let switched = held
        .replace(&engine, &request(V2, WEB), &never)
        .unwrap()
        .expect("the next version serves");
    switched.retire(&engine, Duration::from_secs(1)).unwrap();
    assert_eq!(names(&engine), [APP]);
    assert_eq!(engine.container(APP).unwrap().unwrap().image, V2);
}

#[test]
fn a_port_serves_when_a_connection_is_held_not_when_it_is_closed_at_once() {
    // As Docker's proxy does when nothing listens in the container: accept, then close.
    let closing = TcpListener::bind("127.0.0.1:0").unwrap();
    let closing_addr = closing.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in closing.incoming() {
            drop(conn);
        }
    });
    assert!(!holds(closing_addr));
    // An app that accepts and waits for a request.
    let serving = TcpListener::bind("127.0.0.1:0").unwrap();
    let serving_addr = serving.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for conn in serving.incoming() {
            open.push(conn);
        }
    });
    assert!(holds(serving_addr));
    // Nothing there at all.
    let nothing = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    assert!(!holds(nothing));
}

#[test]
fn a_start_removes_what_a_killed_watch_left_and_nothing_else() {
    let engine = engine();
    for name in [
        format!("{APP}{NEXT}"),
        format!("{APP}{OLD}7"),
        format!("{APP}{STANDBY}"),
        format!("{APP}-other"),
    ] {
        let spec = nua_runtime::ContainerSpec {
            name,
            image: IMAGE.into(),
            labels: [(local::APP_LABEL.to_owned(), APP.to_owned())].into(),
            ..nua_runtime::ContainerSpec::default()
        };
        engine.create_container(&spec).unwrap();
    }
    let _held = started(&engine);
    assert_eq!(names(&engine), [APP.to_owned(), format!("{APP}-other")]);
}

/// A started app with a standby of its image.
fn with_standby(engine: &FakeEngine) -> Held {
    let mut held = started(engine);
    held.prepare_standby(engine, &request(IMAGE, WEB)).unwrap();
    held
}

#[test]
fn a_standby_holds_the_image_command_without_a_health_check_of_dockers() {
    let engine = engine();
    let mut held = with_standby(&engine);
    let name = format!("{APP}{STANDBY}");
    let spec = engine.spec(&name).unwrap();
    let entrypoint = spec.entrypoint.clone().unwrap();
    assert_eq!(entrypoint[..2], ["/bin/sh", "-c"]);
    assert!(entrypoint[2].contains("USR1"), "{entrypoint:?}");
    // The image's entrypoint, then its command: the shell execs them on release.
    assert_eq!(
        spec.command.as_deref().unwrap(),
        ["/entry", "/nua/scripts/start", "--quick"]
    );
    assert!(spec.no_health_check);
    assert_eq!(spec.ports[0].host, 0);
    // Of the image itself: the app's tag may name another by the time it is used.
    assert_eq!(spec.image, format!("sha256:{IMAGE}"));
    let info = engine.container(&name).unwrap().unwrap();
    assert_eq!((info.state, info.health), (State::Running, None));
    // The app's container is planned as the standby was: it fits.
    assert_eq!(
        held.standby_for(&engine, &request(V2, WEB)).unwrap(),
        Ok(engine.image(IMAGE).unwrap().unwrap().id)
    );
    // Other settings (here an environment value) need a new container.
    let other = request(V2, &format!("{WEB}[env]\nMODE = \"fast\"\n"));
    assert_eq!(
        held.standby_for(&engine, &other).unwrap(),
        Err(Unfit::Settings)
    );
    held.stop(&engine, Duration::from_secs(1)).unwrap();
    assert!(names(&engine).is_empty(), "{:?}", names(&engine));
}

#[test]
fn a_patched_standby_is_released_gated_and_takes_over() {
    let engine = engine();
    let mut held = with_standby(&engine);
    let archive = b"the files".to_vec();
    let switched = held
        .patch(&engine, &request(IMAGE, WEB), &archive, &never)
        .unwrap()
        .expect("the patched standby serves");
    let calls = engine.calls();
    let at = |call: String| {
        calls
            .iter()
            .position(|c| *c == call)
            .unwrap_or_else(|| panic!("no `{call}` in {calls:?}"))
    };
    let put = at(format!("put {APP}{STANDBY}"));
    let signal = at(format!("signal {APP}{STANDBY} SIGUSR1"));
    let renamed = at(format!("rename {APP}{STANDBY} {APP}{NEXT}"));
    let checked = calls
        .iter()
        .rposition(|c| *c == format!("exec {APP}{NEXT} /bin/sh -c {CHECK}"))
        .expect("the health check ran in it");
    let named = at(format!("rename {APP}{NEXT} {APP}"));
    assert!(put < signal && signal < renamed && renamed < checked && checked < named);
    assert_eq!(
        engine.put_archives(),
        [(format!("{APP}{STANDBY}"), archive)]
    );
    switched.retire(&engine, Duration::from_secs(1)).unwrap();
    // The standby became the app; no other standby until one is prepared.
    assert_eq!(names(&engine), [APP]);
    assert_eq!(
        held.standby_for(&engine, &request(IMAGE, WEB)).unwrap(),
        Err(Unfit::None)
    );
}

#[test]
fn a_patched_standby_that_exits_is_removed_and_the_app_serves_on() {
    let engine = engine();
    let mut held = started(&engine);
    // Its image's containers exit once their command runs (the standby's is held till then).
    engine.script(
        V2,
        Script {
            exits_with: Some(3),
            ..Script::default()
        },
    );
    held.prepare_standby(&engine, &request(V2, WEB)).unwrap();
    assert_eq!(
        engine
            .container(&format!("{APP}{STANDBY}"))
            .unwrap()
            .unwrap()
            .state,
        State::Running
    );
    let outcome = held
        .patch(&engine, &request(V2, WEB), b"broken", &never)
        .unwrap()
        .err()
        .expect("a standby that exits does not take over");
    assert!(
        matches!(outcome, Outcome::Exited { code: 3, .. }),
        "{outcome:?}"
    );
    assert_eq!(names(&engine), [APP]);
    assert_eq!(held.current(), Some(APP));
    assert_eq!(engine.container(APP).unwrap().unwrap().image, IMAGE);
}

#[test]
fn a_standby_that_stopped_is_removed_and_not_used() {
    let engine = engine();
    let mut held = with_standby(&engine);
    engine
        .stop_container(&format!("{APP}{STANDBY}"), Duration::from_secs(1))
        .unwrap();
    assert_eq!(
        held.standby_for(&engine, &request(IMAGE, WEB)).unwrap(),
        Err(Unfit::Stopped)
    );
    assert_eq!(names(&engine), [APP]);
}

#[test]
fn a_standby_is_refused_for_files_under_its_mounts() {
    let engine = engine();
    let mut held = started(&engine);
    let volume = "[[volume]]\nname = \"data\"\ntarget = \"/nua/app/data\"\n";
    held.prepare_standby(&engine, &request(IMAGE, &format!("{WEB}{volume}")))
        .unwrap();
    let paths = |list: &[&str]| list.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    assert_eq!(
        held.mounted(&paths(&["nua/app/app.py", "nua/app/data/seed.db"])),
        Some("nua/app/data/seed.db")
    );
    assert_eq!(
        held.mounted(&paths(&["nua/app/app.py", "nua/app/database.py"])),
        None
    );
}

#[test]
fn the_gate_of_a_version_docker_does_not_check_ends() {
    // Its check fails for ever, and Docker says nothing (a standby's own check is off).
    let engine = engine();
    let mut held = with_standby(&engine);
    held.patience = Duration::from_millis(300);
    engine.answer_exec(
        &["/bin/sh", "-c", CHECK],
        ExecOutput {
            exit_code: 1,
            stdout: b"503".to_vec(),
            stderr: Vec::new(),
        },
    );
    let started = Instant::now();
    let outcome = held
        .patch(&engine, &request(IMAGE, WEB), b"files", &never)
        .unwrap()
        .err()
        .expect("a version whose check never passes does not take over");
    assert!(
        started.elapsed() >= held.patience,
        "{:?}",
        started.elapsed()
    );
    match outcome {
        Outcome::Unhealthy { checks } => {
            assert!(checks.iter().any(|c| c.output == "503"), "{checks:?}");
            assert!(
                checks
                    .last()
                    .unwrap()
                    .output
                    .contains("did not pass within 0.3 s"),
                "{checks:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(names(&engine), [APP]);
}

#[test]
fn the_apps_listed_leave_out_the_spares_of_one_that_runs() {
    let engine = engine();
    let mut held = with_standby(&engine);
    let _switched = held
        .replace(&engine, &request(V2, WEB), &never)
        .unwrap()
        .expect("the replacement serves");
    // The app, the one it replaced (being retired), its standby: one app.
    assert_eq!(names(&engine).len(), 3, "{:?}", names(&engine));
    let listed: Vec<String> = crate::apps::list(&engine)
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(listed, [APP]);
    // Without the app, what is left of it shows.
    engine.remove_container(APP).unwrap();
    assert_eq!(crate::apps::list(&engine).unwrap().len(), 2);
}
