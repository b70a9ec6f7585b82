//! Command line: clap definitions and handlers. The only place that prints.

use std::process::ExitCode;

pub fn main_pack() -> ExitCode {
    ExitCode::SUCCESS
}

pub fn main_nua() -> ExitCode {
    ExitCode::SUCCESS
}
