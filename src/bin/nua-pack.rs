//! `nua-pack`: the daemonless image builder.

fn main() -> std::process::ExitCode {
    nua::cli::main_pack()
}
