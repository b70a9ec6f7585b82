//! Progress on stderr: one line per build step, a spinner on a terminal, sizes and times
//! for people.

use std::io::IsTerminal;
use std::time::Duration;

use crate::build::{Event, Reporter};

/// One line per step on stderr; on a terminal, a spinner while the step runs.
pub struct Lines {
    quiet: bool,
    /// Per-blob bars of a wrapped image's pull.
    transfers: crate::cli::transfer::Transfers,
    /// Only warnings (`--json`: stdout is for the result, people still need to know).
    warnings_only: bool,
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
            tty: std::io::stderr().is_terminal(),
            spinner: None,
        }
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
    fn transfers(&self) -> &dyn crate::registry::Progress {
        &self.transfers
    }

    fn event(&mut self, event: Event<'_>) {
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
            Event::Writing { path } => eprintln!("{:>10} {}", "writing", path.display()),
            Event::Warning { message } => self.line(&format!("warning: {message}")),
            Event::Output { line } => self.line(&format!("           {line}")),
        }
    }
}

pub fn human_duration(d: Duration) -> String {
    if d.as_secs() >= 1 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
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
