//! Progress of registry transfers: a bar per blob and an overall bar on a terminal, one plain
//! line per blob otherwise, nothing when quiet.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::cli::progress::{human_bytes, human_duration};
use nua_oci::Digest;
use nua_registry::{BlobReport, Outcome, Progress};

/// Reports blob transfers on stderr.
pub struct Transfers {
    quiet: bool,
    bars: Option<MultiProgress>,
    overall: Option<ProgressBar>,
    started: Mutex<HashMap<Digest, (Instant, Option<ProgressBar>)>>,
}

impl Transfers {
    /// Prints nothing when `quiet`; bars only when stderr is a terminal.
    pub fn new(quiet: bool) -> Transfers {
        let tty = !quiet && std::io::stderr().is_terminal();
        let bars = tty.then(MultiProgress::new);
        let overall = bars.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(0));
            bar.set_style(style(
                "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            ));
            bar.set_message("total");
            bar
        });
        Transfers {
            quiet,
            bars,
            overall,
            started: Mutex::default(),
        }
    }

    /// Remove the bars once everything is done.
    pub fn done(&self) {
        if let Some(overall) = &self.overall {
            overall.finish_and_clear();
        }
    }

    fn line(&self, text: &str) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.println(text);
            }
            None => eprintln!("{text}"),
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("a valid template")
        .progress_chars("=> ")
}

/// `sha256:0123456789ab`: enough to tell blobs apart in a listing.
fn short(digest: &Digest) -> String {
    format!("{}:{}", digest.algorithm(), &digest.hex()[..12])
}

impl Progress for Transfers {
    fn start(&self, digest: &Digest, size: u64) {
        if self.quiet {
            return;
        }
        let bar = self.bars.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(size));
            bar.set_style(style(
                "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            ));
            bar.set_message(digest.hex()[..12].to_owned());
            bar
        });
        if let Some(overall) = &self.overall {
            overall.inc_length(size);
        }
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        started.insert(digest.clone(), (Instant::now(), bar));
    }

    fn advance(&self, digest: &Digest, bytes: u64) {
        let started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, Some(bar))) = started.get(digest) {
            bar.inc(bytes);
        }
        if let Some(overall) = &self.overall {
            overall.inc(bytes);
        }
    }

    fn finish(&self, report: &BlobReport) {
        if self.quiet {
            return;
        }
        let entry = {
            let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
            started.remove(&report.digest)
        };
        let elapsed = match entry {
            Some((since, bar)) => {
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                Some(since.elapsed())
            }
            None => None,
        };
        let what = match report.outcome {
            Outcome::Present => "present",
            Outcome::Downloaded => "downloaded",
            Outcome::Uploaded => "uploaded",
            Outcome::Mounted => "mounted",
        };
        let mut text = format!(
            "{what:>12} {} {}",
            short(&report.digest),
            human_bytes(report.size)
        );
        if let Some(elapsed) = elapsed.filter(|_| report.transferred > 0) {
            let rate = report.transferred as f64 / elapsed.as_secs_f64().max(0.001);
            text += &format!(
                " in {} ({}/s)",
                human_duration(elapsed),
                human_bytes(rate as u64)
            );
        }
        self.line(&text);
    }

    fn retry(&self, digest: &Digest, reason: &str) {
        if !self.quiet {
            self.line(&format!("{:>12} {}: {reason}", "retrying", short(digest)));
        }
    }
}
