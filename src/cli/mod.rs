//! Command line: clap definitions and handlers. The only place that prints.

pub mod args;
pub mod commands;

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

/// Print an error chain once, then its hint, and map it to exit code 1.
fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            if let Some(hint) = err
                .downcast_ref::<crate::config::Error>()
                .and_then(|e| e.hint())
            {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}
