//! `nua run APP --watch` on the real Docker Engine: an edit of the source is built and served
//! on the same port without one failed request, and the old version never answers again once
//! the new one has; a new version that does not start (a syntax error) leaves the old one
//! serving until the source is fixed; files the ignore files exclude trigger nothing; Ctrl-C,
//! after reloads or in the middle of one, leaves no container of the app behind; and
//! `--watch` refuses `--detach` and targets that are not app folders.
//!
//! A `nua` killed with SIGKILL leaves its containers, which `nua stop` removes.
//!
//! An edit of the source is served by the standby (a container of the serving image started
//! in advance, the changed files written into it); a removed file is served by a new
//! container of the new image, as a changed setting would be. Both are polled.
//!
//! Every test has its own cache, warmed by a build of the app before `nua run` (which then
//! finds every step cached but the source), its own container name and image name, and
//! removes what it made when dropped. flask-hello publishes on host port 8000 when it is free:
//! the tests hold that port's lock while their app runs.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::docker::{http_get, wait_for_http};
use common::run::*;
use common::watch::*;
use common::*;

/// Once the new version answers: wait until the old container is gone (the new one alone,
/// named `app`), then for [`AFTER_SWITCH`] more answers, so that the poll spans the old
/// container's retirement; then stop `poller`. Every answer, and the new container's ID.
#[track_caller]
fn answers_until_new(poller: Poller, app: &str) -> (Vec<Answer>, String) {
    let seen = poller.wait_for(SETTLE, |a| a.ok_body() == Some(NEW));
    if !seen {
        let answers = poller.stop();
        panic!(
            "the new version did not answer within {SETTLE:?} of the reload; the last answers \
             of {}: {:?}",
            answers.len(),
            &answers[answers.len().saturating_sub(5)..]
        );
    }
    let new = only_container(app, SETTLE);
    let more = poller.wait_for_more(AFTER_SWITCH, SETTLE);
    let answers = poller.stop();
    assert!(
        more,
        "the poller stopped before {AFTER_SWITCH} answers followed the old container's \
         removal ({} answers in all, at most {MAX_REQUESTS})",
        answers.len()
    );
    let count = |body: &str| answers.iter().filter(|a| a.ok_body() == Some(body)).count();
    eprintln!(
        "{} answers: {} old, {} new",
        answers.len(),
        count(OLD),
        count(NEW)
    );
    (answers, new)
}

/// A watched flask-hello (`prepare`d), its container's ID, and a poller that has had the old
/// answer.
fn polled(test: &str, prepare: impl FnOnce(&Path)) -> (Watch, String, Poller) {
    let watch = Watch::start(test, prepare);
    let before = container_id(&watch.name);
    let poller = Poller::start(watch.port, "/");
    assert!(
        poller.wait_for(SETTLE, |a| a.ok_body() == Some(OLD)),
        "the poller got no answer from the running app: {:?}",
        poller.answers().first()
    );
    (watch, before, poller)
}

#[test]
fn an_edit_is_served_without_a_failed_request() {
    let (mut watch, before, poller) = polled("watch-edit", |_| {});

    edit_greeting(&watch.app);
    let change = watch.line_with("change:", &["reload"], RELOAD);
    assert!(change.starts_with("change:"), "{change}");
    assert!(
        change.contains("app.py"),
        "the change does not name app.py: {change}"
    );
    let tag_before = tagged(&watch.name);
    let reloaded = watch.reloaded();
    let (answers, after) = answers_until_new(poller, &watch.name);
    assert_switched_once(&answers, OLD, NEW);
    assert_ne!(after, before, "{} is still the old container", watch.name);
    // Served by the standby, app.py written into it; Docker has the new image under the
    // app's tag all the same.
    assert!(
        reloaded.contains("1 file written"),
        "the edit was not served by the standby: {reloaded}"
    );
    assert_ne!(
        tagged(&watch.name),
        tag_before,
        "the app's tag still names the old image"
    );
    let standby = format!("{}.standby", watch.name);
    let deadline = Instant::now() + SETTLE;
    while !container_exists(&standby) {
        assert!(Instant::now() < deadline, "no new standby after the reload");
        std::thread::sleep(Duration::from_millis(100));
    }
    // `nua ps`: the app once, named by its tag (its container runs the previous image's ID
    // with the new files), on its port, its standby not listed.
    let listed = run_ok(nua().args(["ps", "--json"]));
    let apps: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    let ours: Vec<&serde_json::Value> = apps
        .iter()
        .filter(|a| {
            a["name"]
                .as_str()
                .unwrap_or_default()
                .starts_with(&watch.name)
        })
        .collect();
    assert_eq!(ours.len(), 1, "{listed}");
    assert_eq!(ours[0]["name"], watch.name.as_str(), "{listed}");
    assert_eq!(
        ours[0]["image"],
        image_tag(&watch.name).as_str(),
        "{listed}"
    );
    // The port it answers on is Nua's, not the one Docker chose for the container.
    assert_eq!(ours[0]["ports"][0]["host"], watch.port, "{listed}");
    watch.ctrl_c_removes_everything();
}

#[test]
fn a_removed_file_is_served_by_a_new_container() {
    let (mut watch, before, poller) = polled("watch-removed", |app| {
        std::fs::write(app.join("extra.txt"), "to be removed\n").unwrap();
    });
    // One burst: the standby cannot lose a file, so a new container of the new image serves.
    std::fs::remove_file(watch.app.join("extra.txt")).unwrap();
    edit_greeting(&watch.app);
    let reloaded = watch.reloaded();
    let (answers, after) = answers_until_new(poller, &watch.name);
    assert_switched_once(&answers, OLD, NEW);
    assert_ne!(after, before, "{} is still the old container", watch.name);
    assert!(
        reloaded.contains("a new container: `/nua/app/extra.txt` was removed"),
        "{reloaded}"
    );
    let listing =
        run_ok(std::process::Command::new("docker").args(["exec", &watch.name, "ls", "/nua/app"]));
    assert!(!listing.contains("extra.txt"), "{listing}");
    watch.ctrl_c_removes_everything();
}

#[test]
fn a_syntax_error_keeps_the_old_version_serving() {
    let (mut watch, before, poller) = polled("watch-syntax", |_| {});

    edit(&watch.app, &[("def index():", "def index(:")]);
    let failed = watch.line_with("reload failed", &["reloaded"], RELOAD);
    // The reason follows: the last lines of the new version's container, gunicorn's worker
    // traceback among them.
    let deadline = Instant::now() + SETTLE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = watch.run.wait_for_line("SyntaxError", left);
        if line.starts_with("  | ") {
            break;
        }
    }
    let reported = watch.run.stderr.join("\n");
    // The failed version's image, for the guard: the build tagged it.
    let failed_image = common::docker::inspect(&image_tag(&watch.name), "{{.Id}}");
    watch.images.0.push(failed_image.trim().to_owned());
    assert!(
        poller.wait_for_more(AFTER_SWITCH, SETTLE),
        "the poller stopped"
    );
    let (status, body) = http_get(watch.port, "/").expect("the old version answers");
    assert!(status.contains("200"), "GET / answered {status}: {body}");
    assert_eq!(body, OLD);
    assert_eq!(
        only_container(&watch.name, SETTLE),
        before,
        "the failed version replaced the old one"
    );
    assert_all_answered(&poller.answers(), &[OLD]);

    edit(
        &watch.app,
        &[
            ("def index(:", "def index():"),
            (GREETING_LINE, NEW_GREETING_LINE),
        ],
    );
    watch.reloaded();
    let (answers, after) = answers_until_new(poller, &watch.name);
    assert_switched_once(&answers, OLD, NEW);
    assert_ne!(after, before, "{} is still the old container", watch.name);
    watch.ctrl_c_removes_everything();
    // The wording last, after what the user relies on.
    assert!(
        failed.contains("keeps serving the previous version"),
        "the `reload failed` line does not say the previous version serves on: {failed}\n\
         stderr up to the reason:\n{reported}"
    );
}

#[test]
fn an_ignored_file_changes_nothing() {
    let mut watch = Watch::start("watch-ignored", |app| {
        std::fs::write(app.join(".nuaignore"), "notes.txt\n").unwrap();
        std::fs::write(app.join(".dockerignore"), "drafts/\n").unwrap();
        std::fs::write(app.join("notes.txt"), "nothing yet\n").unwrap();
        std::fs::create_dir(app.join("drafts")).unwrap();
    });
    let before = container_id(&watch.name);

    for i in 0..3 {
        std::fs::write(watch.app.join("notes.txt"), format!("note {i}\n")).unwrap();
        std::fs::write(watch.app.join(format!("drafts/{i}.md")), "draft\n").unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    // Nothing is awaited here: the watcher is given time to react, wrongly, if it does.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        container_id(&watch.name),
        before,
        "a change to an ignored file replaced the container"
    );
    let containers = serving_containers(&watch.name);
    assert_eq!(
        containers,
        [(before.clone(), watch.name.clone())],
        "a change to an ignored file started a container"
    );

    // The first change reported is the next real one.
    edit_greeting(&watch.app);
    let change = watch.line_with("change:", &["reload"], RELOAD);
    assert!(
        change.contains("app.py"),
        "the change does not name app.py: {change}"
    );
    let mentions: Vec<&String> = watch
        .run
        .stderr
        .iter()
        .filter(|l| l.contains("notes.txt") || l.contains("drafts"))
        .collect();
    assert!(
        mentions.is_empty(),
        "nua reported an ignored file: {mentions:?}"
    );
    watch.reloaded();
    let (status, body) = wait_for_http(watch.port, "/");
    assert!(status.contains("200"), "GET / answered {status}: {body}");
    assert_eq!(body, NEW);
    watch.ctrl_c_removes_everything();
}

#[test]
fn ctrl_c_during_a_reload_removes_both_versions() {
    let mut watch = Watch::start("watch-interrupted", |_| {});
    // A new version that never becomes healthy: each gunicorn worker sleeps as it imports
    // the app, so the health check's request is never answered.
    edit(
        &watch.app,
        &[(
            "import os\n",
            "import os\nimport time\n\ntime.sleep(3600)\n",
        )],
    );
    watch.line_with("change:", &["reload"], RELOAD);
    // Ctrl-C while the health check runs in the new version, waiting for an answer.
    let next = format!("{}.next", watch.name);
    let deadline = Instant::now() + RELOAD;
    while !check_waits_in(&next) {
        assert!(
            Instant::now() < deadline,
            "no health check waited in {next} within {RELOAD:?}; stderr:\n{}",
            watch.run.stderr.join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    watch.ctrl_c_removes_everything();
}

#[test]
fn nua_stop_removes_what_a_killed_watch_left() {
    let watch = Watch::start("watch-killed", |_| {});
    let standby = format!("{}.standby", watch.name);
    let deadline = Instant::now() + SETTLE;
    while !container_exists(&standby) {
        assert!(Instant::now() < deadline, "no standby within {SETTLE:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let Watch { run, name, .. } = watch;
    run.signal(libc::SIGKILL);
    let (status, _, _) = run.wait(SETTLE);
    assert_eq!(status.code(), None, "nua was not killed");
    let mut left: Vec<String> = app_containers(&name).into_iter().map(|(_, n)| n).collect();
    left.sort();
    assert_eq!(left, [name.clone(), standby], "what a killed watch leaves");

    let (status, _stdout, stderr) = run_for(
        nua().args(["stop", &name, "--time", "1"]),
        Duration::from_secs(60),
    );
    assert!(status.success(), "{stderr}");
    assert!(
        app_containers(&name).is_empty(),
        "containers of {name} are left after `nua stop`: {:?}",
        app_containers(&name)
    );
}

/// Whether flask-hello's health check (`python3 -c 'import urllib.request; …'`) is running in
/// container `name` once gunicorn listens: the check is then waiting for an answer.
fn check_waits_in(name: &str) -> bool {
    let logs = run(std::process::Command::new("docker").args(["logs", name]));
    let top = run(std::process::Command::new("docker").args(["top", name]));
    String::from_utf8_lossy(&logs.stderr).contains("Booting worker")
        && top.status.success()
        && String::from_utf8_lossy(&top.stdout).contains("urllib.request")
}

/// `nua run TARGET --watch --name NAME EXTRA` that must fail, with an error that names
/// `--watch` and each of `words`, and is not clap's for a flag it does not know.
#[track_caller]
fn refused(target: &Path, name: &str, cache: &Path, extra: &[&str], words: &[&str]) {
    let mut cmd = nua();
    cmd.arg("run")
        .arg(target)
        .arg("--watch")
        .arg("--name")
        .arg(name)
        .args(extra)
        .env("NUA_CACHE_DIR", cache);
    let (status, stdout, stderr) = run_for(&mut cmd, BUILD_AND_RUN);
    assert!(
        !status.success() && status.code().is_some(),
        "nua run {} --watch {extra:?} was not refused ({status}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        target.display()
    );
    assert!(
        !stderr.contains("unexpected argument"),
        "nua run has no --watch:\n{stderr}"
    );
    for word in std::iter::once(&"--watch").chain(words) {
        assert!(
            stderr.contains(word),
            "the error does not say {word}:\n{stderr}"
        );
    }
    assert!(
        !container_exists(name),
        "nua run {} --watch {extra:?} made a container",
        target.display()
    );
}

#[test]
fn watch_refuses_detach_and_images() {
    let work = temp_dir();
    let cache = work.path().join("cache");
    let name = unique_name("watch-refused");
    let app = app_copy("flask-hello", work.path(), &name);
    let _image = LoadedImage(image_tag(&name));
    let _container = Container(name.clone());

    refused(&app, &name, &cache, &["--detach"], &["--detach"]);
    assert!(
        !image_exists(&image_tag(&name)),
        "nua run --watch --detach built and loaded the app"
    );

    // Not even an image: an error about loading it would not name `--watch`.
    let tarball = work.path().join("image.tar");
    std::fs::write(&tarball, noise(3, 4096)).unwrap();
    refused(&tarball, &name, &cache, &[], &["folder"]);

    // An image reference Docker does not have: the same, before looking for it.
    let reference = format!("{name}:1");
    refused(Path::new(&reference), &name, &cache, &[], &["folder"]);
}
