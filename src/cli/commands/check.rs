//! `nua-pack check`: load and validate a nua-config, print it normalized.
//!
//! Human mode: the normalized config as pretty JSON on stdout, warnings on stderr; an invalid
//! config is an error (exit 1) printed by `cli::finish` with its hint. `--json`: one JSON
//! object `{ valid, file, config, warnings, errors }` on stdout, exit 0 or 1.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{json, Value};

use crate::cli::args::CheckArgs;
use crate::outln;
use nua_config::{self as config, LoadOptions};

pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let path = args.path.clone().unwrap_or_else(|| PathBuf::from("."));
    let result = config::load(
        &path,
        &LoadOptions {
            strict: args.strict,
        },
    );
    if args.output.json {
        let (valid, report) = json_report(&result);
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(if valid {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let loaded = result?;
    // The struct itself, not `normalized_json()`, so that sections keep the order of the format.
    outln!("{}", serde_json::to_string_pretty(&loaded.config)?)?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(ExitCode::SUCCESS)
}

fn json_report(result: &Result<config::Loaded, config::Error>) -> (bool, Value) {
    match result {
        Ok(loaded) => (
            true,
            json!({
                "valid": true,
                "file": loaded.file,
                "config": loaded.config.normalized_json(),
                "warnings": loaded.warnings,
                "errors": [],
            }),
        ),
        Err(err) => {
            let file = err.file().map(|f| f.display().to_string());
            let mut errors: Vec<Value> = err
                .problems()
                .into_iter()
                .map(|p| json!({ "file": file, "line": p.line, "col": p.col, "message": p.message, "hint": p.hint }))
                .collect();
            if let (Some(hint), [only]) = (err.hint(), errors.as_mut_slice()) {
                only["hint"] = Value::String(hint);
            }
            let warnings = match err {
                config::Error::Strict { warnings, .. } => json!(warnings),
                _ => json!([]),
            };
            (
                false,
                json!({ "valid": false, "file": file, "config": null, "warnings": warnings, "errors": errors }),
            )
        }
    }
}
