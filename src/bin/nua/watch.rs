//! `nua run APP --watch`: run an app folder, and on every change of its files rebuild what
//! changed and put the new version in the old one's place once it serves, the app's ports
//! answering all along (Nua holds them; see `nua_deploy::reload`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use notify::Watcher as _;

use crate::args::RunArgs;
use crate::run::{
    build_layout, hint_start, kept_values, load_layout, port_line, print_line, Knobs, Signals,
};
use nua::cli::{print_error, Hint};
use nua_build::{is_build_input, SourceFilter};
use nua_deploy::local::{LocalPorts, Request};
use nua_deploy::reload::{Held, Unfit};
use nua_deploy::supervise::Outcome;
use nua_runtime::{Docker, Engine, LogOptions, Patch};

/// How long the folder must be quiet before a burst of changes (an editor's save, a `git
/// checkout`) is taken as one.
const QUIET: Duration = Duration::from_millis(40);
/// The longest a burst is waited on.
const BURST: Duration = Duration::from_secs(1);
/// How often the serving container is looked at between changes.
const LOOK_EVERY: Duration = Duration::from_millis(500);

pub fn run(engine: &Docker, app: &Path, args: &RunArgs) -> anyhow::Result<ExitCode> {
    let env = crate::run::overrides(&args.env)?;
    let knobs = Knobs::of(args);
    // Changes made during the first build are seen: the watch starts before it.
    let mut changes = Changes::watch(app)?;
    let (layout, config) = build_layout(app, &knobs)?;
    let (image, details) = load(engine, layout.path(), knobs.quiet)?;
    let config = Some(config);
    // The layout of the image the standby is of: what a new image is compared with.
    let mut standby = Some(layout);
    let mut no_standby_said = false;
    let signals = Signals::register()?;
    let name = nua_deploy::image::app_name(args.name.as_deref(), config.as_ref(), &image);
    let mut request = Request {
        name: name.clone(),
        image,
        details,
        config,
        env,
        host_mounts: true,
        kept: kept_values().map(|k| k.load(&name)).unwrap_or_default(),
    };
    let interrupted = || signals.interrupted();
    let (mut held, plan, outcome) = Held::start(engine, &request, &LocalPorts, &interrupted)
        .map_err(anyhow::Error::new)
        .with_context(|| format!("cannot start `{name}`"))
        .map_err(|e| hint_start(e, &name))
        .map_err(|e| {
            e.context(Hint(
                "`--watch` holds the app's ports itself; free them or give others".into(),
            ))
        })?;
    if !plan.random.is_empty() {
        kept_values()?.save(&name, &plan.random)?;
    }
    // The next versions get the same generated values.
    request.kept = plan.random.clone();
    let quiet = args.quiet;
    if !quiet {
        for note in &plan.notes {
            eprintln!("{note}");
        }
        eprintln!("started {name}");
        for port in &held.published {
            eprintln!("{}", port_line(port));
        }
    }
    // The image of the serving version, and those of earlier ones to remove from Docker once
    // nothing names or uses them (each reload would otherwise leave one behind).
    let mut serving = request.details.id.clone();
    let mut leftovers: Vec<String> = Vec::new();
    let stopped = AtomicBool::new(false);
    let timeout = Duration::from_secs(args.stop_timeout);
    let code = std::thread::scope(|scope| -> anyhow::Result<ExitCode> {
        let follow = |container: String| {
            scope.spawn(move || {
                let _ = engine.logs(
                    &container,
                    LogOptions {
                        follow: true,
                        tail: None,
                    },
                    &mut |line| {
                        print_line(line);
                        std::ops::ControlFlow::Continue(())
                    },
                );
            });
        };
        if let Some(current) = held.current() {
            follow(current.to_owned());
        }
        started(&name, &outcome, quiet);
        if !serves(&outcome) {
            held.lost();
        } else {
            start_standby(engine, &mut held, &request, &mut no_standby_said);
        }
        if !quiet {
            eprintln!("watching {} for changes (Ctrl-C stops)", app.display());
        }
        let mut last_look = Instant::now();
        while !signals.interrupted() {
            if last_look.elapsed() >= LOOK_EVERY {
                last_look = Instant::now();
                look_at_current(engine, &mut held);
                // In use: not for a sweep of old layouts (by this `nua` or another) to take.
                if let Some(layout) = &standby {
                    keep_fresh(layout.path());
                }
            }
            let Some(changed) = changes.next(LOOK_EVERY, &|| signals.interrupted()) else {
                continue;
            };
            eprintln!("change: {}", describe(&changes.root, &changed));
            let started = Instant::now();
            let quiet_build = Knobs {
                quiet: true,
                ..knobs.clone()
            };
            let (layout, config) = match build_layout(app, &quiet_build) {
                Ok(built) => built,
                Err(err) => {
                    eprintln!("reload failed: the build failed; {name} keeps serving the previous version");
                    print_error(&err);
                    continue;
                }
            };
            let built_id = match layout_image_id(layout.path()) {
                Ok(id) => id,
                Err(err) => {
                    eprintln!("reload failed; {name} keeps serving the previous version");
                    print_error(&err);
                    continue;
                }
            };
            if built_id == serving && held.current().is_some() {
                eprintln!("{name}: no change to the image");
                continue;
            }
            let mut next = Request {
                config: Some(config),
                ..request.clone()
            };
            // The fast way: the files that changed written into the standby. Otherwise the
            // image is loaded and a new container started.
            let patch = standby_patch(engine, &mut held, &next, standby.as_ref(), layout.path());
            let mut build_time = started.elapsed();
            let mut result = None;
            let way = match patch {
                Ok(files) => match held.patch(engine, &next, &files.archive, &interrupted) {
                    // The standby could not be used: a new container then, as without one.
                    Err(err) => Way::Container(Some(format!("the standby failed: {err}"))),
                    done => {
                        result = Some(done);
                        Way::Standby(files.files)
                    }
                },
                Err(reason) => Way::Container(reason),
            };
            let result = match result {
                Some(result) => result,
                None => {
                    match load(engine, layout.path(), true) {
                        Ok((image, details)) => {
                            next.image = image;
                            next.details = details;
                        }
                        Err(err) => {
                            eprintln!("reload failed: the image did not load; {name} keeps serving the previous version");
                            print_error(&err);
                            continue;
                        }
                    }
                    leftovers.push(built_id.clone());
                    build_time = started.elapsed();
                    held.replace(engine, &next, &interrupted)
                }
            };
            match result {
                Ok(Ok(switched)) => {
                    let start_time = started.elapsed() - build_time;
                    eprintln!(
                        "reloaded {name} in {:.2} s ({}, start {:.2} s{})",
                        started.elapsed().as_secs_f64(),
                        way.build(build_time),
                        start_time.as_secs_f64(),
                        way.why(),
                    );
                    if let Some(current) = held.current() {
                        follow(current.to_owned());
                    }
                    // Aside: an app that ignores SIGTERM takes the whole stop timeout, and the
                    // next change need not wait for it.
                    let name = &name;
                    scope.spawn(move || {
                        if let Err(err) = switched.retire(engine, timeout) {
                            print_error(&anyhow::Error::new(err).context(format!(
                                "cannot remove the previous container of `{name}`"
                            )));
                        }
                    });
                    let mut loaded = true;
                    if let Way::Standby(_) = way {
                        // The new version serves from the previous image with its files
                        // written over; Docker gets the new image now, for the app's tag and
                        // the next standby.
                        match load(engine, layout.path(), true) {
                            Ok((image, details)) => {
                                next.image = image;
                                next.details = details;
                            }
                            // The next standby is of the previous image, and the next change
                            // is told from its layout: what serves now is one such change.
                            Err(err) => {
                                loaded = false;
                                print_error(&err.context(format!(
                                    "{name} serves its new version, but Docker did not load its \
                                     image"
                                )));
                            }
                        }
                    }
                    leftovers.push(std::mem::replace(&mut serving, built_id));
                    request = next;
                    if loaded {
                        standby = Some(layout);
                    }
                    start_standby(engine, &mut held, &request, &mut no_standby_said);
                }
                // The image that did not take over holds the app's tag now: it goes once a
                // later build takes the tag (the one serving goes when it is replaced, or at
                // the end).
                Ok(Err(Outcome::Interrupted)) => {}
                Ok(Err(outcome)) => {
                    let what = if held.current().is_some() {
                        format!("{name} keeps serving the previous version")
                    } else {
                        "nothing serves until the next change".to_owned()
                    };
                    let (reason, details) =
                        failure(&format!("the new version of {name}"), &outcome);
                    eprintln!("reload failed: {reason}; {what}{details}");
                }
                Err(err) => {
                    eprintln!("reload failed; {name} keeps serving the previous version");
                    print_error(&anyhow::Error::new(err));
                }
            }
            // A standby that became a failed version is gone: another, of the serving image.
            if !signals.interrupted()
                && held.current().is_some()
                && !matches!(held.standby_for(engine, &request), Ok(Ok(_)))
            {
                start_standby(engine, &mut held, &request, &mut no_standby_said);
            }
            forget_images(engine, &mut leftovers, &serving);
        }
        // Given its stop timeout, unless asked again (a second Ctrl-C): then at once.
        let hurry = scope.spawn(|| {
            while !stopped.load(Ordering::SeqCst) {
                if signals.hurried() {
                    let _ = engine.remove_container(&name);
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let result = held.stop(engine, timeout);
        stopped.store(true, Ordering::SeqCst);
        let _ = hurry.join();
        result?;
        leftovers.push(serving.clone());
        forget_images(engine, &mut leftovers, "");
        if !quiet {
            eprintln!("stopped and removed {name}");
        }
        Ok(signals.exit_code())
    })?;
    Ok(code)
}

/// Most bytes of changed files written into a standby: past that, loading the image and
/// starting a container of it is as fast.
const PATCH_LIMIT: u64 = 32 << 20;

/// How a reload got its new version serving.
enum Way {
    /// The standby, with this many files written into it.
    Standby(usize),
    /// A new container of the loaded image; why not the standby, when there was one.
    Container(Option<String>),
}

impl Way {
    fn build(&self, time: Duration) -> String {
        match self {
            Way::Standby(1) => format!("build {:.2} s, 1 file written", time.as_secs_f64()),
            Way::Standby(n) => format!("build {:.2} s, {n} files written", time.as_secs_f64()),
            Way::Container(_) => format!("build and load {:.2} s", time.as_secs_f64()),
        }
    }

    fn why(&self) -> String {
        match self {
            Way::Container(Some(reason)) => format!("; a new container: {reason}"),
            _ => String::new(),
        }
    }
}

/// The files to write into the standby to make it a container of the image in the layout
/// `new`; `Err` with why not, if there is a standby (`Err(None)` when there is none).
fn standby_patch(
    engine: &Docker,
    held: &mut Held,
    next: &Request,
    standby: Option<&tempfile::TempDir>,
    new: &Path,
) -> Result<PatchFiles, Option<String>> {
    if let Some(layout) = standby {
        keep_fresh(layout.path());
    }
    let image_id = match held.standby_for(engine, next) {
        Ok(Ok(image_id)) => image_id,
        Ok(Err(Unfit::None)) => return Err(None),
        Ok(Err(unfit)) => return Err(Some(unfit.to_string())),
        Err(err) => return Err(Some(err.to_string())),
    };
    let Some(layout) = standby else {
        return Err(None);
    };
    if layout_image_id(layout.path()).ok().as_deref() != Some(image_id.as_str()) {
        return Err(None);
    }
    match nua_runtime::patch_between(layout.path(), new, PATCH_LIMIT) {
        Ok(Patch::Files {
            archive,
            paths,
            files,
        }) => match held.mounted(&paths) {
            Some(path) => Err(Some(format!("`/{path}` is under a mount"))),
            None => Ok(PatchFiles { archive, files }),
        },
        Ok(Patch::Refused(reason)) => Err(Some(reason)),
        Err(err) => Err(Some(err.to_string())),
    }
}

struct PatchFiles {
    archive: Vec<u8>,
    files: usize,
}

/// Start a standby of the serving version; without one each change starts a container
/// (said once).
fn start_standby(engine: &Docker, held: &mut Held, request: &Request, said: &mut bool) {
    if let Err(err) = held.prepare_standby(engine, request) {
        if !std::mem::replace(said, true) {
            eprintln!(
                "note: no standby container for {} ({err}); changes start new containers",
                held.name()
            );
        }
    }
}

/// Mark a layout folder as used now.
fn keep_fresh(layout: &Path) {
    if let Ok(dir) = std::fs::File::open(layout) {
        let _ = dir.set_modified(std::time::SystemTime::now());
    }
}

/// The ID Docker gives the image of an OCI layout: its config's digest.
fn layout_image_id(layout: &Path) -> anyhow::Result<String> {
    let (_, info) = nua_runtime::describe_image(layout)?;
    Ok(info.config_descriptor.digest.to_string())
}

fn serves(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Healthy | Outcome::Running)
}

fn started(name: &str, outcome: &Outcome, quiet: bool) {
    match outcome {
        Outcome::Healthy if !quiet => eprintln!("{name} is healthy"),
        Outcome::Running if !quiet => eprintln!("{name} is running"),
        Outcome::Healthy | Outcome::Running | Outcome::Interrupted => {}
        other => {
            let (reason, details) = failure(name, other);
            eprintln!("{reason}; a change starts it again{details}");
        }
    }
}

/// What went wrong with the start of `what` (the app, or its new version): one line, then
/// (each on a line of its own) the container's last lines or its failing check's output.
fn failure(what: &str, outcome: &Outcome) -> (String, String) {
    let indented = |lines: &mut dyn Iterator<Item = &str>| -> String {
        lines.map(|line| format!("\n  | {line}")).collect()
    };
    match outcome {
        Outcome::Exited { code, last_lines } if last_lines.is_empty() => (
            format!("{what} exited with code {code}, saying nothing"),
            String::new(),
        ),
        Outcome::Exited { code, last_lines } => (
            format!("{what} exited with code {code}"),
            format!(
                "\nits last lines:{}",
                indented(&mut last_lines.iter().map(|l| l.text.as_str()))
            ),
        ),
        Outcome::Unhealthy { checks } => {
            let last = checks.iter().rev().find(|c| c.exit_code != 0);
            let reason = match last {
                Some(check) => format!(
                    "{what} is unhealthy: its health check failed (exit code {})",
                    check.exit_code
                ),
                None => format!("{what} is unhealthy"),
            };
            let details = last.map_or(String::new(), |c| indented(&mut c.output.lines()));
            (reason, details)
        }
        _ => (format!("{what} did not start"), String::new()),
    }
}

/// When the serving container has exited (a crash between changes), say so once and let
/// connections wait for the next version.
fn look_at_current(engine: &Docker, held: &mut Held) {
    let Some(current) = held.current().map(str::to_owned) else {
        return;
    };
    let gone = match engine.container(&current) {
        // Removed behind our back (`nua stop`, `docker rm`).
        Ok(None) => format!("{} was removed", held.name()),
        Ok(Some(info))
            if matches!(
                info.state,
                nua_runtime::State::Exited | nua_runtime::State::Dead
            ) =>
        {
            format!(
                "{} exited with code {}",
                held.name(),
                info.exit_code.unwrap_or(-1)
            )
        }
        _ => return,
    };
    eprintln!("{gone}; a change starts it again");
    let _ = engine.remove_container(&current);
    held.lost();
}

/// Remove from Docker the images of `leftovers` (but `serving`) that have no name left and
/// no container; keep in the list those still named or used, for later.
fn forget_images(engine: &Docker, leftovers: &mut Vec<String>, serving: &str) {
    leftovers.sort();
    leftovers.dedup();
    leftovers.retain(|id| {
        if id == serving {
            return true;
        }
        match engine.image(id) {
            Ok(Some(image)) if image.tags.is_empty() => engine.remove_image(id).is_err(),
            Ok(Some(_)) => true,
            _ => false,
        }
    });
}

/// Load a layout the build wrote: the image's name, and what Docker says of it.
fn load(
    engine: &Docker,
    layout: &Path,
    quiet: bool,
) -> anyhow::Result<(String, nua_runtime::ImageDetails)> {
    let (image, _) = load_layout(engine, layout, quiet)?;
    let details = engine
        .image(&image)?
        .with_context(|| format!("Docker has no image `{image}` after loading it"))?;
    Ok((image, details))
}

/// `app.py`, `app.py, templates/index.html and 3 more`: the paths that exist now (an
/// editor's temporary files are gone by then), or, when none does, those removed.
fn describe(root: &Path, paths: &BTreeSet<PathBuf>) -> String {
    let existing: Vec<&PathBuf> = paths
        .iter()
        .filter(|p| root.join(p).symlink_metadata().is_ok())
        .collect();
    let (paths, removed): (Vec<&PathBuf>, &str) = match existing.is_empty() {
        true => (paths.iter().collect(), " (removed)"),
        false => (existing, ""),
    };
    let shown: Vec<String> = paths
        .iter()
        .take(3)
        .map(|p| p.display().to_string())
        .collect();
    match paths.len() {
        n if n > 3 => format!("{} and {} more{removed}", shown.join(", "), n - 3),
        _ => format!("{}{removed}", shown.join(", ")),
    }
}

/// The changes of an app folder that matter to its build: its source (as its ignore files
/// say) and what steers the build (its nua-config, ignore files, `nua/` folder).
struct Changes {
    root: PathBuf,
    events: Receiver<notify::Result<notify::Event>>,
    filter: SourceFilter,
    // Kept alive: dropping it stops the events.
    _watcher: notify::RecommendedWatcher,
}

impl Changes {
    fn watch(app: &Path) -> anyhow::Result<Changes> {
        let root = std::fs::canonicalize(app)
            .with_context(|| format!("cannot read the app folder `{}`", app.display()))?;
        let (tx, events) = mpsc::channel();
        let mut watcher = notify::recommended_watcher(tx)
            .context("cannot watch files (inotify): is the limit of watches reached?")?;
        watcher
            .watch(&root, notify::RecursiveMode::Recursive)
            .with_context(|| format!("cannot watch `{}`", root.display()))
            .map_err(|e| {
                e.context(Hint(
                    "raise `fs.inotify.max_user_watches` (sysctl) if the folder is large".into(),
                ))
            })?;
        let filter = SourceFilter::new(&root)?;
        Ok(Changes {
            root,
            events,
            filter,
            _watcher: watcher,
        })
    }

    /// The paths (relative to the app folder) of the next burst of changes that matter,
    /// waiting at most `wait` for its first one.
    fn next(
        &mut self,
        wait: Duration,
        interrupted: &dyn Fn() -> bool,
    ) -> Option<BTreeSet<PathBuf>> {
        let mut changed = BTreeSet::new();
        let deadline = Instant::now() + wait;
        let mut burst_end: Option<Instant> = None;
        loop {
            if interrupted() {
                return None;
            }
            let until = match burst_end {
                Some(end) => (Instant::now() + QUIET).min(end),
                None => deadline,
            };
            let left = until.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Ok(event)) => {
                    if matches!(event.kind, notify::EventKind::Access(_)) {
                        continue;
                    }
                    for path in event.paths {
                        if let Some(rel) = self.matters(&path) {
                            changed.insert(rel);
                        }
                    }
                    if !changed.is_empty() && burst_end.is_none() {
                        burst_end = Some(Instant::now() + BURST);
                    }
                }
                // A watch that failed (a folder removed as it was added): the next events
                // still come.
                Ok(Err(_)) => {}
                Err(RecvTimeoutError::Timeout) => {
                    if !changed.is_empty() {
                        break;
                    }
                    if Instant::now() >= deadline {
                        return None;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
        // New ignore rules apply from this change on.
        if changed
            .iter()
            .any(|p| p == Path::new(".nuaignore") || p == Path::new(".dockerignore"))
        {
            if let Ok(filter) = SourceFilter::new(&self.root) {
                self.filter = filter;
            }
        }
        Some(changed)
    }

    /// `path` relative to the app folder, when a change to it matters to the build.
    fn matters(&self, path: &Path) -> Option<PathBuf> {
        let rel = path.strip_prefix(&self.root).ok()?;
        if rel.as_os_str().is_empty() || editor_scratch(rel) {
            return None;
        }
        let is_dir = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
        (is_build_input(rel) || self.filter.includes(rel, is_dir)).then(|| rel.to_path_buf())
    }
}

/// An editor's swap, backup or lock file (vim's `.x.swp` and `4913`, Emacs's `#x#` and `.#x`,
/// `x~`): written while one types, so it starts no reload. (A build still takes it, as any
/// file its ignore files do not exclude.)
fn editor_scratch(rel: &Path) -> bool {
    let Some(name) = rel.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let vim = name.starts_with('.') && [".swp", ".swo", ".swx"].iter().any(|s| name.ends_with(s));
    let emacs = (name.starts_with('#') && name.ends_with('#')) || name.starts_with(".#");
    vim || emacs || name.ends_with('~') || name == "4913"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editor_scratch_files_start_no_reload() {
        for scratch in [
            ".app.py.swp",
            "web/.index.html.swx",
            "#app.py#",
            ".#app.py",
            "app.py~",
            "4913",
        ] {
            assert!(editor_scratch(Path::new(scratch)), "{scratch}");
        }
        for file in ["app.py", "swp", "notes.swp", "a#b", "web/4913.txt"] {
            assert!(!editor_scratch(Path::new(file)), "{file}");
        }
    }
}
