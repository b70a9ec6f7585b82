//! Command line: clap definitions and handlers. The only place that prints.

pub mod args;
pub mod commands;
pub mod progress;
pub mod settings;
pub mod transfer;

use std::fmt;
use std::process::ExitCode;

use clap::Parser;

use args::{PackCli, PackCommand};

/// `nua-pack`: parse the command line, run the command, print its error if any.
pub fn main_pack() -> ExitCode {
    exit_on_closed_pipe();
    let cli = PackCli::parse();
    finish(dispatch_pack(&cli.command))
}

/// Let a closed pipe end this process quietly, as it ends `cat` or `ls`: `nua ps --json |
/// head` must not panic on the write that finds the reader gone. The Rust runtime ignores
/// SIGPIPE, which turns that write into an error `println!` panics on; this restores the
/// default. Not for `nua run`, whose foreground must outlive its reader to stop the app.
pub fn exit_on_closed_pipe() {
    // SAFETY: called first thing in `main`, before any thread exists; `SIG_DFL` is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Run one of the builder's commands (shared by `nua-pack` and `nua`).
pub fn dispatch_pack(cmd: &PackCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PackCommand::Check(args) => commands::check::run(args),
        PackCommand::Build(args) => commands::build::run(args),
        PackCommand::Base(cmd) => commands::base::run(cmd),
        PackCommand::Pull(args) => commands::pull::run(args),
        PackCommand::Push(args) => commands::push::run(args),
        PackCommand::Inspect(args) => commands::inspect::run(args),
        PackCommand::Cache(cmd) => commands::cache::run(cmd),
    }
}

/// What the user can do about an error, said once after the error chain as a `hint:` line.
///
/// Hints come one way: as data beside an error's message, never inside it. The command line
/// attaches its own with `.context(Hint("…".into()))`; a library error carries its own,
/// returned by its `hint()`; [`finish`] asks the chain for them, in that order.
#[derive(Debug)]
pub struct Hint(pub std::borrow::Cow<'static, str>);

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The hint of an error: the command line's own, else the first a library error of the chain
/// gives.
fn hint_of(err: &anyhow::Error) -> Option<String> {
    if let Some(hint) = err.downcast_ref::<Hint>() {
        return Some(hint.0.to_string());
    }
    err.chain().find_map(library_hint)
}

/// The hint a library error carries, for the error types that carry one.
fn library_hint(cause: &(dyn std::error::Error + 'static)) -> Option<String> {
    macro_rules! ask {
        ($($error:ty),* $(,)?) => {$(
            if let Some(hint) = cause.downcast_ref::<$error>().and_then(|e| e.hint()) {
                return Some(hint);
            }
        )*};
    }
    ask!(
        nua_config::Error,
        nua_build::Error,
        nua_build::base::BaseError,
        nua_build::fetch::FetchError,
        nua_registry::Error,
        nua_debian::Error,
        nua_sandbox::Error,
        nua_oci::Error,
    );
    None
}

/// Print an error chain once, then its hint, and map it to exit code 1.
pub fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    let err = match result {
        Ok(code) => return code,
        Err(err) => err,
    };
    let hint = hint_of(&err);
    // A `Hint` context is also one link of anyhow's chain: shown once, as the hint.
    let mut causes = err
        .chain()
        .map(|c| c.to_string())
        .filter(|c| Some(c) != hint.as_ref());
    if let Some(first) = causes.next() {
        eprintln!("error: {first}");
    }
    for cause in causes {
        eprintln!("  caused by: {cause}");
    }
    if let Some(hint) = hint {
        eprintln!("hint: {hint}");
    }
    ExitCode::FAILURE
}
