//! Command line: clap definitions and handlers. The only place that prints.

pub mod args;
pub mod commands;
pub mod settings;

use std::fmt;
use std::process::ExitCode;

use clap::Parser;

use args::{NuaCli, NuaCommand, PackCli, PackCommand};

pub fn main_pack() -> ExitCode {
    let cli = PackCli::parse();
    finish(dispatch_pack(&cli.command))
}

pub fn main_nua() -> ExitCode {
    let cli = NuaCli::parse();
    finish(match &cli.command {
        NuaCommand::Pack(cmd) => dispatch_pack(cmd),
    })
}

fn dispatch_pack(cmd: &PackCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PackCommand::Check(args) => commands::check::run(args),
        PackCommand::Build(args) => commands::build::run(args),
    }
}

/// What the user can do about an error: attach it with `.context(Hint("…"))`; it is printed
/// after the error chain as a `hint:` line rather than as part of the chain.
#[derive(Debug)]
pub struct Hint(pub &'static str);

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Print an error chain once, then its hints, and map it to exit code 1.
fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    let err = match result {
        Ok(code) => return code,
        Err(err) => err,
    };
    let mut hints = Vec::new();
    let mut first = true;
    for cause in err.chain() {
        if let Some(hint) = cause.downcast_ref::<Hint>() {
            hints.push(hint.0.to_owned());
            continue;
        }
        if first {
            eprintln!("error: {cause}");
            first = false;
        } else {
            eprintln!("  caused by: {cause}");
        }
    }
    for hint in hints {
        eprintln!("hint: {hint}");
    }
    ExitCode::FAILURE
}
