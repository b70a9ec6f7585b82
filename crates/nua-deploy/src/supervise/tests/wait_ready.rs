//! [`wait_ready`]: healthy, unhealthy, exited, settled, interrupted; [`wait_detached`].

use super::*;

#[test]
fn wait_ready_sees_a_healthy_container() {
    let engine = started(Script {
        health: health(HealthStatus::Healthy, Vec::new()),
        ..Script::default()
    });
    assert_eq!(wait_ready(&engine, APP, &never).unwrap(), Outcome::Healthy);
}

#[test]
fn wait_ready_sees_an_unhealthy_container_with_its_checks() {
    let checks = vec![
        CheckResult {
            exit_code: 1,
            output: "curl: (7) Failed to connect to localhost port 8000".into(),
        },
        CheckResult {
            exit_code: 22,
            output: "curl: (22) The requested URL returned error: 500".into(),
        },
    ];
    let engine = started(Script {
        health: health(HealthStatus::Unhealthy, checks.clone()),
        ..Script::default()
    });
    assert_eq!(
        wait_ready(&engine, APP, &never).unwrap(),
        Outcome::Unhealthy { checks }
    );
}

#[rstest::rstest]
#[case::few_lines(3, 3)]
#[case::more_than_the_last_lines(25, LAST_LINES as usize)]
fn wait_ready_sees_an_exited_container_with_its_last_lines(
    #[case] printed: usize,
    #[case] shown: usize,
) {
    let logs: Vec<LogLine> = (0..printed).map(|i| line(&format!("line {i}"))).collect();
    let engine = started(Script {
        logs: logs.clone(),
        exits_with: Some(3),
        // An exit wins over a health status.
        health: health(HealthStatus::Starting, Vec::new()),
    });
    assert_eq!(
        wait_ready(&engine, APP, &never).unwrap(),
        Outcome::Exited {
            code: 3,
            last_lines: logs[printed - shown..].to_vec(),
        }
    );
}

#[test]
fn wait_ready_without_health_check_waits_for_the_container_to_settle() {
    let engine = started(Script::default());
    let began = Instant::now();
    assert_eq!(wait_ready(&engine, APP, &never).unwrap(), Outcome::Running);
    let waited = began.elapsed();
    assert!(waited >= SETTLE, "{waited:?}");
    assert!(waited < SETTLE + Duration::from_secs(2), "{waited:?}");
}

#[rstest::rstest]
#[case::at_once(1)]
#[case::while_starting(3)]
fn wait_ready_stops_when_interrupted(#[case] on_call: usize) {
    let engine = started(Script {
        health: health(HealthStatus::Starting, Vec::new()),
        ..Script::default()
    });
    let asked = Cell::new(0);
    let interrupted = || {
        asked.set(asked.get() + 1);
        asked.get() >= on_call
    };
    assert_eq!(
        wait_ready(&engine, APP, &interrupted).unwrap(),
        Outcome::Interrupted
    );
    assert_eq!(asked.get(), on_call);
    // Waiting does not touch the container.
    assert_eq!(engine.calls(), ["create app", "start app"]);
}

#[test]
fn wait_ready_for_no_container_is_an_error() {
    let engine = engine(Script::default());
    let err = wait_ready(&engine, APP, &never).unwrap_err();
    assert!(
        matches!(&err, Error::Engine(nua_runtime::Error::NoSuchContainer { name }) if name == APP),
        "{err:?}"
    );
}

#[test]
fn wait_detached_removes_an_app_that_exited_and_keeps_an_unhealthy_one() {
    let engine = started(Script {
        logs: vec![line("cannot bind")],
        exits_with: Some(1),
        ..Script::default()
    });
    let outcome = wait_detached(&engine, APP, &never).unwrap();
    assert!(
        matches!(outcome, Outcome::Exited { code: 1, .. }),
        "{outcome:?}"
    );
    assert!(engine.container(APP).unwrap().is_none());

    let engine = started(Script {
        health: health(HealthStatus::Unhealthy, Vec::new()),
        ..Script::default()
    });
    let outcome = wait_detached(&engine, APP, &never).unwrap();
    assert!(matches!(outcome, Outcome::Unhealthy { .. }), "{outcome:?}");
    assert!(engine.container(APP).unwrap().is_some());
}
