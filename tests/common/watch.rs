//! `nua run APP --watch` as the watch tests drive it: a poller
//! that asks the app for a page without pause and keeps every answer, checks on those answers
//! (none failed, the old version never came back once the new one answered), the containers
//! of an app by their `nua.app` label, and a guard for the images each reload leaves; and
//! [`Watch`], a running `nua run --watch` of a copy of flask-hello.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::path::{Path, PathBuf};
use std::sync::MutexGuard;

use super::docker::{http_get, wait_for_http};
use super::run::*;
use super::*;

/// The most requests a [`Poller`] makes: at one every 10 ms or more, over a minute and a half
/// of polling, far more than a reload of flask-hello takes; the bound keeps a test that goes
/// wrong from polling forever.
pub const MAX_REQUESTS: usize = 10_000;

/// One answer a [`Poller`] got: the status line and body, or why there was none.
#[derive(Clone, Debug)]
pub struct Answer {
    /// Milliseconds since the poller started, for the failure messages.
    pub at_ms: u128,
    pub result: Result<(String, String), String>,
}

impl Answer {
    /// The body, when the status is 200.
    pub fn ok_body(&self) -> Option<&str> {
        match &self.result {
            Ok((status, body)) if status.split_whitespace().nth(1) == Some("200") => Some(body),
            _ => None,
        }
    }
}

/// `GET path` on a port one request after the other (a new connection each, 10 ms apart), in a
/// thread of its own, until stopped or [`MAX_REQUESTS`] are made.
pub struct Poller {
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    thread: Option<JoinHandle<()>>,
}

impl Poller {
    pub fn start(port: u16, path: &str) -> Poller {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let (flag, kept, path) = (stop.clone(), answers.clone(), path.to_owned());
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            for _ in 0..MAX_REQUESTS {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let result = http_get(port, &path).map_err(|e| e.to_string());
                let answer = Answer {
                    at_ms: start.elapsed().as_millis(),
                    result,
                };
                kept.lock().unwrap().push(answer);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Poller {
            stop,
            answers,
            thread: Some(thread),
        }
    }

    /// The answers so far.
    pub fn answers(&self) -> Vec<Answer> {
        self.answers.lock().unwrap().clone()
    }

    /// Wait (at most `timeout`) until an answer satisfies `check`. False when the time is up or
    /// the poller has stopped first.
    pub fn wait_for(&self, timeout: Duration, check: impl Fn(&Answer) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut looked = 0;
        loop {
            {
                let answers = self.answers.lock().unwrap();
                if answers[looked..].iter().any(&check) {
                    return true;
                }
                looked = answers.len();
            }
            let finished = self.thread.as_ref().is_none_or(JoinHandle::is_finished);
            if finished || Instant::now() > deadline {
                // What came in between the last look and the end.
                return self.answers.lock().unwrap()[looked..].iter().any(&check);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait (at most `timeout`) for `more` answers beyond those there are now. False when the
    /// time is up or the poller has stopped first.
    pub fn wait_for_more(&self, more: usize, timeout: Duration) -> bool {
        let target = self.answers.lock().unwrap().len() + more;
        let deadline = Instant::now() + timeout;
        loop {
            if self.answers.lock().unwrap().len() >= target {
                return true;
            }
            let finished = self.thread.as_ref().is_none_or(JoinHandle::is_finished);
            if finished || Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop; every answer.
    pub fn stop(mut self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the poller thread panicked");
        }
        self.answers()
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Panics unless every answer is a 200 whose body is one of `bodies`, listing the others (the
/// first 20) with when they came.
#[track_caller]
pub fn assert_all_answered(answers: &[Answer], bodies: &[&str]) {
    let bad: Vec<(usize, &Answer)> = answers
        .iter()
        .enumerate()
        .filter(|(_, a)| !a.ok_body().is_some_and(|b| bodies.contains(&b)))
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {} requests failed or got another answer than {bodies:?}; the first ones:\n{}",
        bad.len(),
        answers.len(),
        bad.iter()
            .take(20)
            .map(|(i, a)| format!("  #{i} at {} ms: {:?}", a.at_ms, a.result))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Panics unless `answers` (each a 200 with `old` or `new`, see [`assert_all_answered`]) start
/// with `old`, then switch to `new` once and for all.
#[track_caller]
pub fn assert_switched_once(answers: &[Answer], old: &str, new: &str) {
    assert_all_answered(answers, &[old, new]);
    assert_eq!(
        answers.first().and_then(Answer::ok_body),
        Some(old),
        "the first answer is not the old version's"
    );
    let first_new = answers
        .iter()
        .position(|a| a.ok_body() == Some(new))
        .unwrap_or_else(|| panic!("none of {} answers is {new:?}", answers.len()));
    let old_again: Vec<String> = answers[first_new..]
        .iter()
        .enumerate()
        .filter(|(_, a)| a.ok_body() == Some(old))
        .map(|(i, a)| format!("#{} at {} ms", first_new + i, a.at_ms))
        .collect();
    assert!(
        old_again.is_empty(),
        "the old version answered again after the new one did (#{first_new} at {} ms), {} \
         times: {}",
        answers[first_new].at_ms,
        old_again.len(),
        old_again.join(", ")
    );
}

/// The containers labelled `nua.app=app`, running or not: `(id, name)` each.
pub fn app_containers(app: &str) -> Vec<(String, String)> {
    run_ok(Command::new("docker").args([
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        &format!("label=nua.app={app}"),
        "--format",
        "{{.ID}} {{.Names}}",
    ]))
    .lines()
    .filter_map(|l| l.split_once(' '))
    .map(|(id, name)| (id.to_owned(), name.to_owned()))
    .collect()
}

/// The full ID of container `name`.
pub fn container_id(name: &str) -> String {
    super::docker::inspect(name, "{{.Id}}").trim().to_owned()
}

/// The ID of the image container `name` runs.
pub fn image_id(name: &str) -> String {
    super::docker::inspect(name, "{{.Image}}").trim().to_owned()
}

/// The containers of app `app` but its standby (`app.standby`, started in advance of the
/// next change, its command held).
pub fn serving_containers(app: &str) -> Vec<(String, String)> {
    let standby = format!("{app}.standby");
    app_containers(app)
        .into_iter()
        .filter(|(_, name)| *name != standby)
        .collect()
}

/// Wait (at most `timeout`) until the only container of app `app`, its standby aside, is the
/// one named `app`; its ID.
#[track_caller]
pub fn only_container(app: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let containers = serving_containers(app);
        if let [(id, name)] = containers.as_slice() {
            if name == app {
                return id.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "after {timeout:?}, the containers of {app} are {containers:?}, not one named {app}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The images a test's app ran, removed when dropped: each reload tags a new image and leaves
/// the previous one untagged (`nua` removes it once retired, but not when a test fails
/// midway).
#[derive(Default)]
pub struct Images(pub Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        for id in &self.0 {
            let _ = Command::new("docker").args(["rmi", "-f", id]).output();
        }
    }
}

/// Long enough for a cold build of flask-hello from PyPI plus its health check.
pub const BUILD_AND_RUN: Duration = Duration::from_secs(600);

/// Long enough for a reload: the source step built again, the new container started and
/// healthy.
pub const RELOAD: Duration = Duration::from_secs(300);

/// For the polls that follow a line of `nua run`: the old container gone, the new version
/// answering.
pub const SETTLE: Duration = Duration::from_secs(30);

/// How many more answers the poller must get once the old container is gone, so that a
/// failure as it is retired, or the old version answering again, would be seen.
pub const AFTER_SWITCH: usize = 100;

/// What flask-hello answers on `/`, and after [`edit_greeting`].
pub const OLD: &str = "Hello from Flask!\n";
pub const NEW: &str = "Hello from Flask!!\n";

/// The line of app.py that makes `/`'s answer, and the text it gets in the new version.
pub const GREETING_LINE: &str = r#"}!\n""#;
pub const NEW_GREETING_LINE: &str = r#"}!!\n""#;

/// `nua run --watch` of a copy of flask-hello, healthy and watching, with what the test made.
/// The fields drop in order: `nua` killed first, should the test fail before Ctrl-C, then its
/// containers removed, then the images they ran, then the port lock and the folder released.
pub struct Watch {
    pub run: Foreground,
    pub name: String,
    pub app: PathBuf,
    pub port: u16,
    _containers: [Container; 3],
    pub images: Images,
    _image: LoadedImage,
    _port: MutexGuard<'static, ()>,
    _work: tempfile::TempDir,
}

impl Watch {
    /// Copy flask-hello (then `prepare` the copy), warm a cache with a build of it, and start
    /// `nua run APP --watch --name NAME` on that cache; returns once it is watching.
    pub fn start(test: &str, prepare: impl FnOnce(&Path)) -> Watch {
        let work = temp_dir();
        let cache = cache_with_base("python", work.path());
        let name = unique_name(test);
        let app = app_copy("flask-hello", work.path(), &name);
        prepare(&app);
        // Outside the port lock: only the source's step is left for `nua run` to build.
        build(&app, &cache, &work.path().join("warm.tar"), &[]);
        let image = LoadedImage(image_tag(&name));
        let port_guard = port_lock(8000);
        let containers = [
            Container(name.clone()),
            Container(format!("{name}.next")),
            Container(format!("{name}.standby")),
        ];

        let mut cmd = nua();
        cmd.arg("run")
            .arg(&app)
            .arg("--watch")
            .arg("--name")
            .arg(&name)
            .env("NUA_CACHE_DIR", &cache);
        let mut run = Foreground::spawn(&mut cmd);
        run.wait_for_line(&format!("{name} is healthy"), BUILD_AND_RUN);
        let watching = run.wait_for_line("watching", SETTLE);
        let all = run.stderr.join("\n");
        assert!(all.contains(&format!("started {name}")), "{all}");
        let canonical = std::fs::canonicalize(&app).unwrap();
        assert!(
            [&app, &canonical]
                .iter()
                .any(|dir| watching.contains(&format!("watching {}", dir.display())))
                && watching.contains("for changes"),
            "the watching line does not name {}: {watching}",
            app.display()
        );
        let port = url_port(&run.stderr, 8000);
        let (status, body) = wait_for_http(port, "/");
        assert!(status.contains("200"), "GET / answered {status}: {body}");
        assert_eq!(body, OLD);
        let images = Images(vec![image_id(&name)]);
        Watch {
            run,
            name,
            app,
            port,
            _containers: containers,
            images,
            _image: image,
            _port: port_guard,
            _work: work,
        }
    }

    /// Read stderr up to the next line with `wanted`, and return it; panic, with all stderr,
    /// if a line with one of `unwanted` comes first or `timeout` passes.
    pub fn line_with(&mut self, wanted: &str, unwanted: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // Every line has "": this is the next line, whatever it says.
            let line = self.run.wait_for_line("", left);
            if line.contains(wanted) {
                return line;
            }
            if let Some(bad) = unwanted.iter().find(|u| line.contains(**u)) {
                panic!(
                    "a line with {bad:?} came before one with {wanted:?}; stderr:\n{}",
                    self.run.stderr.join("\n")
                );
            }
        }
    }

    /// Wait for the `reloaded NAME` line that must follow a change, record the new images
    /// (the one its container runs, the one its tag names), and return the line.
    pub fn reloaded(&mut self) -> String {
        let line = self.line_with(
            &format!("reloaded {}", self.name),
            &["reload failed", "no change to the image"],
            RELOAD,
        );
        self.images.0.push(image_id(&self.name));
        self.images.0.push(tagged(&self.name));
        line
    }

    /// Ctrl-C: `nua` must stop and remove every container of the app, say so, free the port
    /// and exit 130.
    pub fn ctrl_c_removes_everything(self) {
        let Watch {
            run, name, port, ..
        } = self;
        run.signal(libc::SIGINT);
        let (status, _stdout, stderr) = run.wait(Duration::from_secs(120));
        assert_eq!(status.code(), Some(130), "{stderr}");
        assert!(
            stderr.contains(&format!("stopped and removed {name}")),
            "{stderr}"
        );
        let left = app_containers(&name);
        assert!(
            left.is_empty(),
            "containers labelled nua.app={name} are left after Ctrl-C: {left:?}"
        );
        assert!(
            !container_exists(&format!("{name}.next")),
            "{name}.next is left after Ctrl-C"
        );
        assert!(
            http_get(port, "/").is_err(),
            "something still answers on {port} after Ctrl-C"
        );
    }
}

/// Replace `from` with `to` in the app's `app.py`, in place (as an editor that writes over the
/// file does).
#[track_caller]
pub fn edit(app: &Path, replacements: &[(&str, &str)]) {
    let path = app.join("app.py");
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in replacements {
        assert!(text.contains(from), "app.py has no {from:?}:\n{text}");
        text = text.replacen(from, to, 1);
    }
    std::fs::write(&path, text).unwrap();
}

/// flask-hello's `/` answers [`NEW`] instead of [`OLD`].
pub fn edit_greeting(app: &Path) {
    edit(app, &[(GREETING_LINE, NEW_GREETING_LINE)]);
}

/// The ID of the image the app's tag names.
pub fn tagged(name: &str) -> String {
    super::docker::inspect(&image_tag(name), "{{.Id}}")
        .trim()
        .to_owned()
}
