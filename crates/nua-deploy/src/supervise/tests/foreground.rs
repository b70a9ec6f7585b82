//! [`foreground`]: the output passed on, and the container stopped and removed however it ends.

use super::*;

/// What [`foreground`] gave its closures, and what it returned.
struct Followed {
    outcome: Outcome,
    output: Vec<LogLine>,
    outcomes: Vec<Outcome>,
}

/// Run `foreground` on `engine`, interrupted from the `interrupt_on`th question on.
fn follow(engine: &FakeEngine, interrupt_on: usize) -> Followed {
    let asked = AtomicUsize::new(0);
    let interrupted = || asked.fetch_add(1, Ordering::SeqCst) + 1 >= interrupt_on;
    let output = Mutex::new(Vec::new());
    let print = |line: LogLine| output.lock().unwrap().push(line);
    let mut outcomes = Vec::new();
    let outcome = foreground(
        engine,
        APP,
        &interrupted,
        &|| false,
        &print,
        &mut |o: &Outcome| outcomes.push(o.clone()),
        TIMEOUT,
    )
    .unwrap();
    Followed {
        outcome,
        output: output.into_inner().unwrap(),
        outcomes,
    }
}

fn talking() -> Vec<LogLine> {
    vec![
        line("listening on :8000"),
        LogLine {
            stream: Stream::Stderr,
            text: "GET / 200".into(),
        },
        line("shutting down"),
    ]
}

/// `output` got the first lines of `logs`, in order (at least one: the follower passes a
/// line on before it looks whether to stop).
fn assert_prefix(output: &[LogLine], logs: &[LogLine]) {
    assert!(!output.is_empty());
    assert_eq!(output, &logs[..output.len()]);
}

#[test]
fn foreground_stops_and_removes_the_container_when_interrupted() {
    let engine = started(Script {
        logs: talking(),
        health: health(HealthStatus::Healthy, Vec::new()),
        ..Script::default()
    });
    let before = engine.calls().len();
    let followed = follow(&engine, 2);
    assert_eq!(followed.outcome, Outcome::Interrupted);
    assert_eq!(followed.outcomes, [Outcome::Healthy]);
    assert_prefix(&followed.output, &talking());
    assert_eq!(calls_since(&engine, before), ["stop app", "remove app"]);
    assert_eq!(engine.container(APP).unwrap(), None);
}

#[rstest::rstest]
#[case::interrupted(None, 2)]
#[case::exited(Some(1), usize::MAX)]
fn foreground_passes_every_output_line_on(
    #[case] exits_with: Option<i64>,
    #[case] interrupt_on: usize,
) {
    let engine = started(Script {
        logs: talking(),
        exits_with,
        health: health(HealthStatus::Healthy, Vec::new()),
    });
    let followed = follow(&engine, interrupt_on);
    assert_eq!(followed.output, talking());
}

#[test]
fn foreground_interrupted_before_ready_stops_and_removes_the_container() {
    let engine = started(Script {
        health: health(HealthStatus::Starting, Vec::new()),
        ..Script::default()
    });
    let before = engine.calls().len();
    let followed = follow(&engine, 1);
    assert_eq!(followed.outcome, Outcome::Interrupted);
    assert_eq!(followed.outcomes, [Outcome::Interrupted]);
    assert_eq!(calls_since(&engine, before), ["stop app", "remove app"]);
    assert_eq!(engine.container(APP).unwrap(), None);
}

#[test]
fn foreground_removes_an_exited_container() {
    let logs = vec![line("starting"), line("error: no database")];
    let engine = started(Script {
        logs: logs.clone(),
        exits_with: Some(1),
        health: None,
    });
    let before = engine.calls().len();
    let followed = follow(&engine, usize::MAX);
    let exited = Outcome::Exited {
        code: 1,
        last_lines: logs.clone(),
    };
    assert_eq!(followed.outcome, exited);
    assert_eq!(followed.outcomes, [exited]);
    assert_prefix(&followed.output, &logs);
    // Nothing to stop.
    assert_eq!(calls_since(&engine, before), ["remove app"]);
    assert_eq!(engine.container(APP).unwrap(), None);
}

#[test]
fn foreground_stops_and_removes_an_unhealthy_container() {
    let checks = vec![CheckResult {
        exit_code: 1,
        output: "down".into(),
    }];
    let engine = started(Script {
        health: health(HealthStatus::Unhealthy, checks.clone()),
        ..Script::default()
    });
    let before = engine.calls().len();
    let followed = follow(&engine, usize::MAX);
    let unhealthy = Outcome::Unhealthy { checks };
    assert_eq!(followed.outcome, unhealthy);
    assert_eq!(followed.outcomes, [unhealthy]);
    assert_eq!(calls_since(&engine, before), ["stop app", "remove app"]);
    assert_eq!(engine.container(APP).unwrap(), None);
}

#[test]
fn foreground_of_no_container_is_an_error() {
    let engine = engine(Script::default());
    let interrupted = || false;
    let print = |_: LogLine| {};
    let err = foreground(
        &engine,
        APP,
        &interrupted,
        &|| false,
        &print,
        &mut |_| {},
        TIMEOUT,
    )
    .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Engine(nua_runtime::Error::NoSuchContainer { .. })
        ),
        "{err:?}"
    );
}
