//! `nua-pack build --json` as the app tests drive it: one JSON event per line, the result
//! last, `SOURCE_DATE_EPOCH` fixed so digests compare.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::{nua_pack, run_ok};

/// The epoch every app test builds at, unless it sets another.
pub const EPOCH: &str = "1700000000";

/// `nua-pack build APP -o OUT --json EXTRA` with the cache `cache`, at [`EPOCH`].
pub fn build_command(app: &Path, cache: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = nua_pack();
    cmd.arg("build")
        .arg(app)
        .arg("--output")
        .arg(out)
        .arg("--json")
        .args(extra)
        .env("NUA_CACHE_DIR", cache)
        .env("SOURCE_DATE_EPOCH", EPOCH);
    cmd
}

/// The JSON lines a `--json` build printed.
pub fn events(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// A build that must succeed: its events, the result last.
pub fn build_events(cmd: &mut Command) -> Vec<Value> {
    events(run_ok(cmd).as_bytes())
}

/// The steps that ran (were not taken from the cache), in order.
pub fn steps_made(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .filter(|e| e["event"] == "step_finished" && e["cached"] == false)
        .map(|e| e["step"].as_str().unwrap())
        .collect()
}
