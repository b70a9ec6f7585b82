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
    let cli = PackCli::parse();
    finish(dispatch_pack(&cli.command))
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

/// What the user can do about an error: attach it with `.context(Hint("…".into()))`; it is printed
/// after the error chain as a `hint:` line rather than as part of the chain.
#[derive(Debug)]
pub struct Hint(pub std::borrow::Cow<'static, str>);

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Print an error chain once, then its hints, and map it to exit code 1.
pub fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    let err = match result {
        Ok(code) => return code,
        Err(err) => err,
    };
    // anyhow finds a context of type `Hint` anywhere in the chain; its text is shown once,
    // on its own line, rather than as one more cause.
    let hint = err.downcast_ref::<Hint>().map(|h| h.0.to_string());
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
    let hint = hint.or_else(|| {
        err.downcast_ref::<nua_config::Error>()
            .and_then(|e| e.hint())
    });
    if let Some(hint) = hint {
        eprintln!("hint: {hint}");
    }
    ExitCode::FAILURE
}
