//! `nua`: every `nua-pack` command, plus the run side.

fn main() -> std::process::ExitCode {
    nua::cli::main_nua()
}
