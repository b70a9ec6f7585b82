//! Progress on stderr: one line per build step, a spinner on a terminal, sizes and times
//! for people.

use std::io::IsTerminal;
use std::time::Duration;

use crate::outln;
use nua_build::{Event, Reporter};

/// One line per step on stderr; on a terminal, a spinner while the step runs.
pub struct Lines {
    quiet: bool,
    /// Per-blob bars of a wrapped image's pull.
    transfers: crate::cli::transfer::Transfers,
    /// Only warnings on stderr (`--json`: stdout is for the result, people still need to
    /// know).
    warnings_only: bool,
    /// Print the events as JSON lines on stdout (`build --json`).
    events: bool,
    /// Say why each step is made again (`--why`).
    why: bool,
    tty: bool,
    spinner: Option<indicatif::ProgressBar>,
}

impl Lines {
    /// Prints nothing when `quiet`, only warnings when `json`.
    pub fn new(quiet: bool, json: bool) -> Lines {
        Lines {
            quiet,
            transfers: crate::cli::transfer::Transfers::new(quiet || json),
            warnings_only: json,
            events: false,
            why: false,
            tty: std::io::stderr().is_terminal(),
            spinner: None,
        }
    }

    /// Also print every event as one JSON object per line on stdout, for CI.
    pub fn with_json_events(mut self) -> Lines {
        self.events = true;
        self
    }

    /// Say why each step that is not cached is made again.
    pub fn with_why(mut self, why: bool) -> Lines {
        self.why = why;
        self
    }

    /// Print above the spinner, if there is one.
    fn line(&self, text: &str) {
        match &self.spinner {
            Some(spinner) => spinner.println(text),
            None => eprintln!("{text}"),
        }
    }
}

impl Reporter for Lines {
    fn transfers(&self) -> &dyn nua_registry::Progress {
        &self.transfers
    }

    fn event(&mut self, event: Event<'_>) {
        if self.events {
            // A reader gone mid-build: the build goes on; the result's line ends it quietly.
            let _ = outln!("{}", json_event(&event));
        }
        if self.quiet || (self.warnings_only && !matches!(event, Event::Warning { .. })) {
            return;
        }
        match event {
            Event::StepStarted { step } if self.tty => {
                let spinner = indicatif::ProgressBar::new_spinner();
                spinner.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                        .expect("a valid template"),
                );
                spinner.set_message(format!("{step:>10}"));
                spinner.enable_steady_tick(Duration::from_millis(100));
                self.spinner = Some(spinner);
            }
            Event::StepStarted { .. } => {}
            Event::Rebuilt { step, reasons } => {
                if !self.tty {
                    eprintln!("{step:>10} running");
                }
                if self.why {
                    for reason in reasons {
                        self.line(&format!("{:>10} because {reason}", ""));
                    }
                }
            }
            Event::StepFinished {
                step,
                cached,
                elapsed,
            } => {
                if let Some(spinner) = self.spinner.take() {
                    spinner.finish_and_clear();
                }
                self.transfers.done();
                let status = if cached { "cached" } else { "done" };
                eprintln!("{step:>10} {status} in {}", human_duration(elapsed));
            }
            Event::Fetched { step, from } => {
                if self.why {
                    self.line(&format!("{step:>10} from cache {from}"));
                }
            }
            Event::Writing { path } => eprintln!("{:>10} {}", "writing", path.display()),
            Event::Warning { message } => self.line(&format!("warning: {message}")),
            Event::Output { line } => self.line(&format!("           {line}")),
        }
    }
}

/// An event as one line of JSON: `{"event": "step_finished", "step": "source", …}`.
fn json_event(event: &Event<'_>) -> serde_json::Value {
    use serde_json::json;
    match event {
        Event::Warning { message } => json!({"event": "warning", "message": message}),
        Event::Output { line } => json!({"event": "output", "line": line}),
        Event::StepStarted { step } => json!({"event": "step_started", "step": step}),
        Event::Rebuilt { step, reasons } => {
            json!({"event": "step_running", "step": step, "reasons": reasons})
        }
        Event::StepFinished {
            step,
            cached,
            elapsed,
        } => json!({
            "event": "step_finished",
            "step": step,
            "cached": cached,
            "seconds": elapsed.as_secs_f64(),
        }),
        Event::Fetched { step, from } => {
            json!({"event": "step_fetched", "step": step, "from": from})
        }
        Event::Writing { path } => json!({"event": "writing", "path": path}),
    }
}

pub fn human_duration(d: Duration) -> String {
    if d.as_secs() >= 1 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// A time ago for people: `40 s`, `12 min`, `5 h`, `3 days`.
pub fn human_age(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 2 * 86400 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86400),
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
