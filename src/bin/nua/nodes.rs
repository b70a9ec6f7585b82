//! `nua nodes`: the nodes of the Docker Swarm this server's engine manages, their state, and
//! the tasks of Nua's instances each runs.

use std::process::ExitCode;

use crate::args::NodesArgs;
use crate::load::docker;
use nua::cli::Hint;
use nua::outln;
use nua_deploy::instance::INSTANCE_LABEL;
use nua_runtime::swarm::{NodeInfo, TaskState};
use nua_runtime::Swarm;

/// One node as `nua nodes --json` shows it.
#[derive(serde::Serialize)]
struct Shown {
    #[serde(flatten)]
    node: NodeInfo,
    /// The services of Nua's instances with a task running (or starting) on it.
    running: Vec<String>,
}

pub fn nodes(args: &NodesArgs) -> anyhow::Result<ExitCode> {
    let engine = docker()?;
    if engine.manager()?.is_none() {
        return Err(
            anyhow::anyhow!("this Docker Engine is not a manager of a swarm").context(Hint(
                "`docker swarm init` makes one; `NUA_ENGINE=swarm nua deploy` runs instances on it"
                    .into(),
            )),
        );
    }
    let mut shown: Vec<Shown> = engine
        .nodes()?
        .into_iter()
        .map(|node| Shown {
            node,
            running: Vec::new(),
        })
        .collect();
    for service in engine.services(INSTANCE_LABEL)? {
        for task in engine.tasks(&service.name)? {
            let live = matches!(task.state, TaskState::Running | TaskState::Starting);
            if let Some(node) = shown.iter_mut().find(|n| n.node.id == task.node) {
                if live && task.desired == TaskState::Running {
                    node.running.push(service.name.clone());
                }
            }
        }
    }
    for node in &mut shown {
        node.running.sort();
        node.running.dedup();
    }
    if args.output.json {
        outln!("{}", serde_json::to_string(&shown)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<26} {:<20} {:<8} {:<12} {:<8} RUNNING",
        "ID",
        "HOSTNAME",
        "STATE",
        "AVAILABILITY",
        "ROLE"
    )?;
    for s in &shown {
        let role = match (s.node.leader, s.node.manager) {
            (true, _) => "leader",
            (false, true) => "manager",
            _ => "worker",
        };
        outln!(
            "{:<26} {:<20} {:<8} {:<12} {:<8} {}",
            s.node.id,
            s.node.hostname,
            s.node.state,
            s.node.availability,
            role,
            if s.running.is_empty() {
                "-".to_owned()
            } else {
                s.running.join(", ")
            }
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
