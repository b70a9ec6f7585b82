//! The `[docker]` options of a nua-config, of a provider, or of a site in a deploy file.
//!
//! The original Nua handed them, whatever they were, to the Docker client's `run`. Nua applies
//! the ones that make sense for a container it manages and refuses the others by name, so an
//! option never silently does nothing:
//!
//! - `restart_policy`: `{ name = "always" | "unless-stopped" | "on-failure" | "no",
//!   maximum_retry_count = N }` or just the name. Default `unless-stopped`: after a reboot or
//!   a restart of Docker the instance comes back by itself, and one stopped on purpose stays
//!   stopped;
//! - `mem_limit`, `shm_size`: bytes, or a number with `b`, `k`, `m` or `g` (`"512m"`);
//! - `nano_cpus`, `pids_limit`: numbers;
//! - `init`: Docker's init (tini) as PID 1, forwarding signals; by default yes for an app (so
//!   one whose process ignores SIGTERM as PID 1 still stops at once, and a switch does not
//!   wait for the kill timeout) and no for a provider, whose server handles its signals;
//! - `placement`: Swarm placement constraints (`"node.labels.db == yes"`, or a list of
//!   them) for an instance on Docker Swarm; an instance on one Docker Engine refuses it;
//! - `detach` (containers always run detached) and `auto_remove = false`: accepted, nothing
//!   to do.

use std::collections::BTreeMap;

use serde_json::Value;

use nua_runtime::{Limits, Restart};

/// What the options ask of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    pub restart: Restart,
    pub limits: Limits,
    /// `init`: Docker's init as PID 1 (`None`: Nua's default, yes for apps).
    pub init: Option<bool>,
    /// Swarm placement constraints.
    pub placement: Vec<String>,
}

/// The options Nua applies.
const KNOWN: &str = "restart_policy, mem_limit, shm_size, nano_cpus, pids_limit, init, \
                     placement, detach, auto_remove";

/// Read the options; an error says which one is wrong and why (without its location, which
/// the caller adds).
pub fn run_options(docker: &BTreeMap<String, Value>) -> Result<RunOptions, String> {
    let mut options = RunOptions {
        restart: Restart::UnlessStopped,
        limits: Limits::default(),
        init: None,
        placement: Vec::new(),
    };
    for (key, value) in docker {
        match key.as_str() {
            "restart_policy" => options.restart = restart(value)?,
            "mem_limit" => options.limits.memory_bytes = Some(bytes(key, value)?),
            "shm_size" => options.limits.shm_bytes = Some(bytes(key, value)?),
            "nano_cpus" => options.limits.nano_cpus = Some(positive(key, value)?),
            "pids_limit" => options.limits.pids = Some(positive(key, value)?),
            "init" => {
                options.init = Some(
                    value
                        .as_bool()
                        .ok_or_else(|| format!("`init = {value}` is neither true nor false"))?,
                )
            }
            "placement" => options.placement = placement(value)?,
            "detach" => {}
            "auto_remove" if value == &Value::Bool(false) => {}
            "auto_remove" => {
                return Err(
                    "`auto_remove = true`: Nua keeps an instance's containers to restart \
                            and reconcile them; remove the option"
                        .to_owned(),
                )
            }
            "network" | "network_mode" => {
                return Err(format!(
                    "`{key}`: an instance runs on its own private network with its providers \
                     and publishes the ports of its `[port]` tables; remove the option, or \
                     give the site a `network`"
                ))
            }
            _ => {
                return Err(format!(
                    "`{key}` is not an option Nua applies (it applies: {KNOWN})"
                ))
            }
        }
    }
    Ok(options)
}

/// Swarm placement constraints: `attribute == value` or `attribute != value` each.
fn placement(value: &Value) -> Result<Vec<String>, String> {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    items
        .into_iter()
        .map(|item| {
            let text = item.as_str().unwrap_or_default();
            let ok = (text.contains("==") || text.contains("!="))
                && text.starts_with(|c: char| c.is_ascii_alphabetic());
            if ok {
                Ok(text.to_owned())
            } else {
                Err(format!(
                    "`placement` `{item}` is not a constraint: give `attribute == value` or \
                     `attribute != value`, such as \"node.labels.db == yes\""
                ))
            }
        })
        .collect()
}

fn restart(value: &Value) -> Result<Restart, String> {
    let (name, retries) = match value {
        Value::String(name) => (name.as_str(), None),
        Value::Object(table) => {
            if let Some(other) = table
                .keys()
                .find(|k| !matches!(k.as_str(), "name" | "maximum_retry_count"))
            {
                return Err(format!(
                    "`restart_policy.{other}` is not a key of a restart policy (it has: name, \
                     maximum_retry_count)"
                ));
            }
            let name = table.get("name").and_then(Value::as_str).unwrap_or("no");
            let retries = match table.get("maximum_retry_count") {
                None => None,
                Some(v) => Some(v.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(
                    || format!("`restart_policy.maximum_retry_count = {v}` is not a count"),
                )?),
            };
            (name, retries)
        }
        other => {
            return Err(format!(
                "`restart_policy = {other}` is neither a policy name nor a table with `name`"
            ))
        }
    };
    let restart = match name {
        "no" | "" => Restart::No,
        "always" => Restart::Always,
        "unless-stopped" => Restart::UnlessStopped,
        "on-failure" => Restart::OnFailure(retries.unwrap_or(0)),
        other => {
            return Err(format!(
                "`restart_policy` `{other}` is not a policy (one of: no, always, \
                 unless-stopped, on-failure)"
            ))
        }
    };
    if retries.is_some() && !matches!(restart, Restart::OnFailure(_)) {
        return Err(format!(
            "`restart_policy.maximum_retry_count` applies to `on-failure` only, not `{name}`"
        ));
    }
    Ok(restart)
}

/// A size: a number of bytes, or a string with a unit as Docker writes them (`512m`).
fn bytes(key: &str, value: &Value) -> Result<i64, String> {
    let bad = || {
        format!(
            "`{key} = {value}` is not a size: give bytes, or a number with b, k, m or g \
             (`\"512m\"`)"
        )
    };
    let n = match value {
        Value::Number(n) => n.as_i64().ok_or_else(bad)?,
        Value::String(text) => {
            let text = text.trim().to_ascii_lowercase();
            let text = text
                .strip_suffix('b')
                .filter(|t| !t.is_empty())
                .unwrap_or(&text);
            let (digits, unit) = match text.char_indices().last() {
                Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
                _ => (text, 'b'),
            };
            let shift = match unit {
                'b' => 0,
                'k' => 10,
                'm' => 20,
                'g' => 30,
                _ => return Err(bad()),
            };
            let n: i64 = digits.trim().parse().map_err(|_| bad())?;
            n.checked_mul(1 << shift).ok_or_else(bad)?
        }
        _ => return Err(bad()),
    };
    if n <= 0 {
        return Err(bad());
    }
    Ok(n)
}

fn positive(key: &str, value: &Value) -> Result<i64, String> {
    value
        .as_i64()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{key} = {value}` is not a positive number"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn options(value: Value) -> Result<RunOptions, String> {
        let map: BTreeMap<String, Value> = serde_json::from_value(value).unwrap();
        run_options(&map)
    }

    #[test]
    fn instances_restart_unless_stopped_by_default() {
        let none = options(json!({})).unwrap();
        assert_eq!(none.restart, Restart::UnlessStopped);
        assert_eq!(none.limits, Limits::default());
    }

    #[test]
    fn the_corpus_options_are_applied() {
        // As the original's modules write them.
        let o = options(json!({"detach": true, "auto_remove": false,
            "restart_policy": {"name": "always"}}))
        .unwrap();
        assert_eq!(o.restart, Restart::Always);
        let o = options(json!({"restart_policy": {"name": "on-failure",
            "maximum_retry_count": 5}}))
        .unwrap();
        assert_eq!(o.restart, Restart::OnFailure(5));
        assert_eq!(
            options(json!({"restart_policy": "no"})).unwrap().restart,
            Restart::No
        );
        assert_eq!(options(json!({"init": false})).unwrap().init, Some(false));
        assert_eq!(options(json!({})).unwrap().init, None);
    }

    #[test]
    fn sizes_take_docker_units() {
        let o = options(
            json!({"mem_limit": "512m", "shm_size": "1g", "nano_cpus": 500000000,
            "pids_limit": 100}),
        )
        .unwrap();
        assert_eq!(o.limits.memory_bytes, Some(512 << 20));
        assert_eq!(o.limits.shm_bytes, Some(1 << 30));
        assert_eq!(o.limits.nano_cpus, Some(500_000_000));
        assert_eq!(o.limits.pids, Some(100));
        assert_eq!(
            options(json!({"mem_limit": "64MB"}))
                .unwrap()
                .limits
                .memory_bytes,
            Some(64 << 20)
        );
        assert_eq!(
            options(json!({"mem_limit": 1024}))
                .unwrap()
                .limits
                .memory_bytes,
            Some(1024)
        );
        for bad in [json!("12x"), json!("m"), json!(-1), json!(true), json!("0")] {
            let err = options(json!({ "mem_limit": bad })).unwrap_err();
            assert!(err.contains("is not a size"), "{err}");
        }
    }

    #[test]
    fn options_nua_cannot_honour_are_refused_by_name() {
        let err = options(json!({"network": "host"})).unwrap_err();
        assert!(
            err.starts_with("`network`: an instance runs on its own"),
            "{err}"
        );
        let err = options(json!({"auto_remove": true})).unwrap_err();
        assert!(err.contains("remove the option"), "{err}");
        let err = options(json!({"privileged": true})).unwrap_err();
        assert_eq!(
            err,
            format!("`privileged` is not an option Nua applies (it applies: {KNOWN})")
        );
        let err = options(json!({"restart_policy": {"name": "sometimes"}})).unwrap_err();
        assert!(err.contains("`sometimes` is not a policy"), "{err}");
        let err = options(json!({"restart_policy": {"name": "always",
            "maximum_retry_count": 3}}))
        .unwrap_err();
        assert!(err.contains("applies to `on-failure` only"), "{err}");
        let err = options(json!({"restart_policy": {"nme": "always"}})).unwrap_err();
        assert!(err.contains("`restart_policy.nme`"), "{err}");
    }

    #[test]
    fn placement_is_one_constraint_or_a_list_of_them() {
        assert_eq!(
            options(json!({"placement": "node.labels.db == yes"}))
                .unwrap()
                .placement,
            ["node.labels.db == yes"]
        );
        assert_eq!(
            options(json!({"placement": ["node.role==manager", "node.hostname != a"]}))
                .unwrap()
                .placement,
            ["node.role==manager", "node.hostname != a"]
        );
        for bad in [json!("anywhere"), json!(3), json!(["== x"])] {
            let err = options(json!({ "placement": bad })).unwrap_err();
            assert!(err.contains("is not a constraint"), "{err}");
        }
    }
}
