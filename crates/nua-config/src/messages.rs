//! The words of validation messages: paths as users read them, what a schema accepts,
//! suggestions for typos, and the retired keys with what to write instead.

use serde_json::Value;

use super::error::{Pos, Problem};
use super::services::{MAX_RETRIES, MAX_SECONDS};
use super::tree::{Kind, Node};
use super::validate::resolve;

/// Keys the original accepted that have no place any more: why, and what to write instead.
/// They are errors rather than moved keys because their meaning changed: a script path is not
/// a command, and the build no longer runs as root or serves files by itself.
pub(crate) const RETIRED: &[(&str, &str, &str)] = &[
    ("build-script", "`build-script` is no longer supported", "list the commands in `[build] build`, e.g. `build = [\"sh ./build.sh\"]`"),
    ("start-script", "`start-script` is no longer supported", "put the command in `[run] start`, e.g. `start = \"sh ./start.sh\"`"),
    ("build-as-root", "`build-as-root` is no longer supported: build commands run as user `nua`", "prefix the commands that need root with `sudo`"),
    ("document-root", "`document-root` is no longer supported: Nua does not serve static files by itself", "serve the folder from a `[run] start` command (e.g. a web server) and declare its `[port.web]`"),
    (
        "assign",
        "`[[assign]]` is no longer supported: generated values are declared in `[env]`",
        "write each one in `[env]`, e.g. `POSTGRES_PASSWORD = { random = true, length = 24 }`",
    ),
];

/// `port.web`, `provider[0].env`: where in the file a value sits, for messages.
pub(crate) fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for seg in path {
        if seg.parse::<usize>().is_ok() {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
    }
    out
}

/// "`port.web.container` must be an integer …, found the string "80"", with a hint when a
/// number was written as a string.
pub(crate) fn type_problem(node: &Node, path: &[String], words: &[String]) -> Problem {
    let mut problem = Problem::new(
        node.pos,
        format!(
            "`{}` must be {}, found {}",
            display_path(path),
            alternatives(words),
            shown(node)
        ),
    );
    let wants = |word: &str| words.iter().any(|w| w.contains(word));
    problem.hint = match &node.kind {
        Kind::Str(s) if s.parse::<i64>().is_ok() && wants("integer") => {
            Some(format!("write the number without quotes: `{s}`"))
        }
        Kind::Int(_) | Kind::BigInt(_) | Kind::Float(_) if wants("a string") => Some(format!(
            "write it in quotes: `\"{}\"`",
            plain(&node.to_json())
        )),
        _ => None,
    };
    problem
}

/// "`metadata.release` is out of range: 99999999999999999999 (at most …)", with what the
/// key means when its unit is not obvious (`healthcheck` durations are seconds).
pub(crate) fn range_problem(
    pos: Pos,
    path: &[String],
    value: &str,
    below: bool,
    (min, max): (i128, i128),
) -> Problem {
    let bound = if below {
        format!("at least {min}")
    } else {
        format!("at most {max}")
    };
    let mut problem = Problem::new(
        pos,
        format!(
            "`{}` is out of range: {value} ({bound})",
            display_path(path)
        ),
    );
    let key = path.last().map(String::as_str);
    problem.hint = match (path.first().map(String::as_str), key) {
        (Some("healthcheck"), Some(key @ ("interval" | "timeout" | "start-period"))) => Some(format!(
            "`{key}` is a number of seconds; the most is {MAX_SECONDS}, which is 10 years"
        )),
        (Some("healthcheck"), Some("retries")) => Some(format!(
            "`retries` counts failed checks in a row before the container is unhealthy; the most is {MAX_RETRIES}"
        )),
        _ => None,
    };
    problem
}

/// `a`, `a or b`, `a, b or c`; "an integer" is left out when "a number" is there.
pub(crate) fn alternatives(words: &[String]) -> String {
    let words: Vec<&String> = words
        .iter()
        .filter(|w| !(w.as_str() == "an integer" && words.iter().any(|o| o == "a number")))
        .collect();
    match words.as_slice() {
        [] => "something else".into(),
        [one] => one.to_string(),
        [rest @ .., last] => {
            let rest: Vec<&str> = rest.iter().map(|w| w.as_str()).collect();
            format!("{} or {last}", rest.join(", "))
        }
    }
}

/// How to name the table at `path` in a "missing key" message, and the hint.
pub(crate) fn describe_table(path: &[String], key: &str) -> (String, String) {
    match path {
        [] => ("the config".into(), format!("add a `[{key}]` table")),
        [.., parent, index] if index.parse::<usize>().is_ok() => {
            let n: usize = index.parse().unwrap_or(0) + 1;
            (
                format!("the `[[{parent}]]` entry #{n} (`{}`)", display_path(path)),
                format!("add `{key} = ...` to this `[[{parent}]]` entry"),
            )
        }
        _ => {
            let at = display_path(path);
            (
                format!("`[{at}]`"),
                format!("add `{key} = ...` to `[{at}]`"),
            )
        }
    }
}

/// The known key closest to `key`, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'n>(key: &str, names: &'n [String]) -> Option<&'n str> {
    names
        .iter()
        .map(|n| (strsim::jaro_winkler(&key.to_lowercase(), n), n))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n.as_str())
}

/// What a schema accepts, in words.
pub(crate) fn expected(schema: &Value, root: &Value) -> Vec<String> {
    let schema = resolve(schema, root);
    if let Some(branches) = schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
    {
        return branches.iter().flat_map(|b| expected(b, root)).collect();
    }
    if let Some(only) = schema.get("const") {
        return vec![format!("`{}`", plain(only))];
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values.iter().map(|v| format!("`{}`", plain(v))).collect();
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    types
        .into_iter()
        .filter(|t| *t != "null")
        .map(|t| match t {
            "boolean" => "a boolean",
            "integer" => "an integer",
            "number" => "a number",
            "string" => "a string",
            "array" => "a list",
            _ => "a table",
        })
        .map(
            |word| match schema.get("required").and_then(Value::as_array) {
                // `{ key = ... }` rather than "a table", when the table is that small.
                Some(req) if word == "a table" && !req.is_empty() => {
                    let keys: Vec<String> = req
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|k| format!("{k} = ..."))
                        .collect();
                    format!("`{{ {} }}`", keys.join(", "))
                }
                _ => word.to_string(),
            },
        )
        .collect()
}

pub(crate) fn plain(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), String::from)
}

pub(crate) fn shown(node: &Node) -> String {
    match &node.kind {
        Kind::Str(s) => format!("the string \"{s}\""),
        Kind::Int(i) => format!("the integer {i}"),
        Kind::BigInt(digits) => format!("the integer {digits}"),
        Kind::Float(f) => format!("the float {f:?}"),
        Kind::Bool(b) => format!("`{b}`"),
        _ => node.describe().to_string(),
    }
}
