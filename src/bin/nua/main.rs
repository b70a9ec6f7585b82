//! `nua`: every `nua-pack` command, plus the run side.
//!
//! The run side's command line lives here, with the binary, rather than in the `nua`
//! library that both binaries share: that library never names `nua-runtime` or
//! `nua-deploy`, so `nua-pack` links neither of them nor bollard.

mod args;
mod backup;
mod deploy;
mod load;
mod nodes;
mod proxy;
mod ps;
mod run;
mod watch;

use std::process::ExitCode;

use clap::Parser;

use args::{NuaCli, NuaCommand};
use nua::cli::{dispatch_pack, finish};

fn main() -> ExitCode {
    let cli = NuaCli::parse();
    finish(match &cli.command {
        NuaCommand::Pack(cmd) => dispatch_pack(cmd),
        NuaCommand::Load(args) => load::run(args),
        NuaCommand::Run(args) => run::run(args),
        NuaCommand::Ps(args) => ps::ps(args),
        NuaCommand::Logs(args) => ps::logs(args),
        NuaCommand::Stop(args) => ps::stop(args),
        NuaCommand::Deploy(args) => deploy::deploy(args),
        NuaCommand::Status(args) => deploy::status(args),
        NuaCommand::Remove(args) => deploy::remove(args),
        NuaCommand::History(args) => deploy::history(args),
        NuaCommand::Nodes(args) => nodes::nodes(args),
        NuaCommand::Start(args) => deploy::start(args),
        NuaCommand::Restart(args) => deploy::restart(args),
        NuaCommand::Certs(args) => proxy::certs(args),
        NuaCommand::Pause(args) => deploy::pause(args, true),
        NuaCommand::Unpause(args) => deploy::pause(args, false),
        NuaCommand::Reconcile(args) => deploy::reconcile(args),
        NuaCommand::Rollback(args) => deploy::rollback(args),
        NuaCommand::Server(args) => deploy::server(args),
        NuaCommand::Backup(args) => backup::backup(args),
        NuaCommand::Backups(args) => backup::backups(args),
        NuaCommand::Restore(args) => backup::restore(args),
    })
}
