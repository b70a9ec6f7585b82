//! Check a parsed tree against the JSON Schema generated from the model, before serde sees
//! it: every unknown key, missing key and wrong type is reported with its position, all at
//! once, with a "did you mean" when a known key is close. The schema is the single source of
//! what is allowed, so the checks cannot drift from the types.

use serde_json::Value;

use super::error::{Pos, Problem};
use super::messages::{describe_table, expected, plain, range_problem, type_problem};
use super::parse::{Kind, Node};
use super::unknown_key::{unknown_key, Keys};

/// What the walk found: errors, and warnings for keys it renamed.
#[derive(Default)]
pub(crate) struct Findings {
    pub problems: Vec<Problem>,
    pub warnings: Vec<(Pos, String)>,
}

/// Check `node` against the root schema, renaming keys written with `_` or capitals to
/// their kebab-case names (with a warning).
pub(crate) fn check(node: &mut Node, schema: &Value) -> Findings {
    let mut findings = Findings::default();
    let mut path = Vec::new();
    walk(node, schema, schema, &mut path, &mut findings);
    findings
}

pub(crate) fn resolve<'s>(mut schema: &'s Value, root: &'s Value) -> &'s Value {
    while let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/$defs/");
        match root.get("$defs").and_then(|d| d.get(name)) {
            Some(s) => schema = s,
            None => break,
        }
    }
    schema
}

fn walk(node: &mut Node, schema: &Value, root: &Value, path: &mut Vec<String>, out: &mut Findings) {
    let schema = resolve(schema, root);
    if schema == &Value::Bool(true) {
        // Free-form values (`[docker]`, volume `options`) pass as written, but an integer
        // beyond 64 bits cannot be passed at all.
        return big_ints(node, path, out);
    }
    if let Some(branches) = schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
    {
        return walk_any(node, branches, root, path, out);
    }
    if let Some(only) = schema.get("const") {
        if &node.to_json() != only {
            out.problems
                .push(type_problem(node, path, &[format!("`{}`", plain(only))]));
        }
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        let value = node.to_json();
        if !allowed.contains(&value) {
            let words: Vec<String> = allowed.iter().map(|v| format!("`{}`", plain(v))).collect();
            out.problems.push(type_problem(node, path, &words));
        }
        return;
    }
    if !type_matches(node, schema) {
        out.problems
            .push(type_problem(node, path, &expected(schema, root)));
        return;
    }
    match &mut node.kind {
        Kind::Int(i) => {
            let (min, max) = bounds(schema);
            let value = i128::from(*i);
            if value < min || value > max {
                out.problems.push(range_problem(
                    node.pos,
                    path,
                    &i.to_string(),
                    value < min,
                    (min, max),
                ));
            }
        }
        // Beyond 64 bits: out of range for every integer the config holds.
        Kind::BigInt(digits) => {
            let (min, max) = bounds(schema);
            let below = digits.starts_with('-');
            out.problems
                .push(range_problem(node.pos, path, digits, below, (min, max)));
        }
        Kind::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    path.push(i.to_string());
                    walk(item, item_schema, root, path, out);
                    path.pop();
                }
            }
        }
        Kind::Table(_) => walk_table(node, schema, root, path, out),
        _ => {}
    }
}

fn big_ints(node: &Node, path: &mut Vec<String>, out: &mut Findings) {
    match &node.kind {
        Kind::BigInt(digits) => {
            let all = (i128::from(i64::MIN), i128::from(i64::MAX));
            let below = digits.starts_with('-');
            out.problems
                .push(range_problem(node.pos, path, digits, below, all));
        }
        Kind::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                big_ints(item, path, out);
                path.pop();
            }
        }
        Kind::Table(entries) => {
            for entry in entries {
                path.push(entry.key.clone());
                big_ints(&entry.value, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn walk_any(
    node: &mut Node,
    branches: &[Value],
    root: &Value,
    path: &mut Vec<String>,
    out: &mut Findings,
) {
    let mut best: Option<(Findings, Node)> = None;
    for branch in branches {
        let mut attempt = node.clone();
        let mut findings = Findings::default();
        walk(&mut attempt, branch, root, path, &mut findings);
        if findings.problems.is_empty() {
            *node = attempt;
            out.warnings.extend(findings.warnings);
            return;
        }
        // A table or list that fails a table or list branch, or an integer that fails an
        // integer branch: that branch's problems are the precise ones (an unknown key inside
        // an env spec, a port number out of range).
        let branch = resolve(branch, root);
        let precise = match node.kind {
            Kind::Table(_) | Kind::Array(_) => type_matches(node, branch),
            Kind::Int(_) | Kind::BigInt(_) => {
                branch.get("type").is_some() && type_matches(node, branch)
            }
            _ => false,
        };
        if precise {
            best = Some((findings, attempt));
        }
    }
    if let Some((findings, _)) = best {
        out.problems.extend(findings.problems);
        out.warnings.extend(findings.warnings);
        return;
    }
    let mut words: Vec<String> = Vec::new();
    for branch in branches {
        for w in expected(branch, root) {
            if !words.contains(&w) {
                words.push(w);
            }
        }
    }
    out.problems.push(type_problem(node, path, &words));
}

fn walk_table(
    node: &mut Node,
    schema: &Value,
    root: &Value,
    path: &mut Vec<String>,
    out: &mut Findings,
) {
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    let table_pos = node.pos;
    let names: Vec<String> = props
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    let Some(entries) = node.entries_mut() else {
        return;
    };
    let written: Vec<String> = entries.iter().map(|e| e.key.clone()).collect();
    let mut seen: Vec<String> = Vec::new();
    for entry in entries.iter_mut() {
        let known = props.is_some_and(|p| p.contains_key(&entry.key));
        if !known && props.is_some() && additional == Some(&Value::Bool(false)) {
            let keys = Keys {
                names: &names,
                written: &written,
                seen: &seen,
            };
            if !unknown_key(entry, &keys, path, out) {
                continue;
            }
        }
        seen.push(entry.key.clone());
        let sub = match props.and_then(|p| p.get(&entry.key)) {
            Some(s) => s,
            None => match additional {
                Some(s) if s.is_object() || s == &Value::Bool(true) => s,
                _ => continue,
            },
        };
        path.push(entry.key.clone());
        walk(&mut entry.value, sub, root, path, out);
        path.pop();
    }
    check_required(schema, &seen, table_pos, path, out);
}

/// Every key the schema requires of a table at `table_pos` is among those `seen`.
fn check_required(
    schema: &Value,
    seen: &[String],
    table_pos: Pos,
    path: &[String],
    out: &mut Findings,
) {
    for required in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(key) = required.as_str() else {
            continue;
        };
        if !seen.iter().any(|k| k == key) {
            let (what, hint) = describe_table(path, key);
            out.problems.push(
                Problem::new(
                    table_pos,
                    format!("{what} is missing the required key `{key}`"),
                )
                .with_hint(hint),
            );
        }
    }
}

/// The smallest and largest integer `schema` accepts: its `minimum` and `maximum`, the range
/// of its `format` (`uint16`, `uint32`, …), and the 64 bits the tree holds.
fn bounds(schema: &Value) -> (i128, i128) {
    let (mut min, mut max) = (i128::from(i64::MIN), i128::from(i64::MAX));
    let format: Option<(i128, i128)> = match schema.get("format").and_then(Value::as_str) {
        Some("uint8") => Some((0, u8::MAX.into())),
        Some("uint16") => Some((0, u16::MAX.into())),
        Some("uint32") => Some((0, u32::MAX.into())),
        Some("uint64" | "uint") => Some((0, u64::MAX.into())),
        Some("int8") => Some((i8::MIN.into(), i8::MAX.into())),
        Some("int16") => Some((i16::MIN.into(), i16::MAX.into())),
        Some("int32") => Some((i32::MIN.into(), i32::MAX.into())),
        _ => None,
    };
    if let Some((lo, hi)) = format {
        min = min.max(lo);
        max = max.min(hi);
    }
    if let Some(m) = schema.get("minimum").and_then(Value::as_i64) {
        min = min.max(m.into());
    }
    if let Some(m) = schema.get("maximum").and_then(Value::as_i64) {
        max = max.min(m.into());
    }
    (min, max)
}

fn type_matches(node: &Node, schema: &Value) -> bool {
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return true,
    };
    types.iter().any(|t| {
        matches!(
            (*t, &node.kind),
            ("null", Kind::Null)
                | ("boolean", Kind::Bool(_))
                | ("integer", Kind::Int(_) | Kind::BigInt(_))
                | ("number", Kind::Int(_) | Kind::BigInt(_) | Kind::Float(_))
                | ("string", Kind::Str(_))
                | ("array", Kind::Array(_))
                | ("object", Kind::Table(_))
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::messages::did_you_mean;
    use super::*;
    use crate::parse::{parse, Format};
    use rstest::rstest;

    fn problems(text: &str) -> Vec<String> {
        let mut tree = parse(text, Format::Toml).unwrap();
        let findings = check(&mut tree, &crate::schema::json_schema());
        findings
            .problems
            .iter()
            .map(|p| format!("{}:{}: {}", p.line, p.col, p.message))
            .collect()
    }

    const HEAD: &str = "[metadata]\nid = \"a\"\nversion = \"1\"\n";

    #[rstest]
    #[case(
        "[metadata]\nid = \"a\"\n",
        "1:1: `[metadata]` is missing the required key `version`"
    )]
    #[case(
        "[metadata]\nid = \"a\"\nversion = \"1\"\nrelease = \"x\"\n",
        "4:11: `metadata.release` must be an integer"
    )]
    #[case(
        "[metadata]\nid = \"a\"\nversion = \"1\"\n[build]\nmethod = \"docker\"\n",
        "5:10: `build.method` must be `build` or `wrap`, found the string \"docker\""
    )]
    #[case(
        "[metadata]\nid = \"a\"\nversion = 1.0\n",
        "3:11: `metadata.version` must be a string, found the float 1.0"
    )]
    #[case(
        "[metadata]\nid = \"a\"\nversion = \"1\"\n[port.web]\ncontainer = \"80\"\n",
        "5:13: `port.web.container` must be an integer"
    )]
    #[case(
        "[metadata]\nid = \"a\"\nversion = \"1\"\n[port.web]\ncontainer = 80\nprots = 1\n",
        "6:1: unknown key `prots` in `port.web`"
    )]
    #[case(
        "[metadata]\nid = \"a\"\nversion = \"1\"\n[env]\nA = { random = true, lenght = 3 }\n",
        "5:22: unknown key `lenght` in `env.A`"
    )]
    #[case(
        "[metadata]\nid = \"a\"\nversion = \"1\"\nrelease = 99999999999999999999\n",
        "4:11: `metadata.release` is out of range: 99999999999999999999 (at most 9223372036854775807)"
    )]
    #[case(
        "[metadata]\nid = \"a\"\nversion = \"1\"\nrelease = -1\n",
        "4:11: `metadata.release` is out of range: -1 (at least 0)"
    )]
    #[case(
        "[metadata]\nid = \"a\"\nversion = \"1\"\nrelease = 2.0\n",
        "4:11: `metadata.release` must be an integer, found the float 2.0"
    )]
    #[case(
        "[metadata]\nid = \"a\"\nversion = \"1\"\n[port.web]\ncontainer = 70000\n",
        "5:13: `port.web.container` is out of range: 70000 (at most 65535)"
    )]
    #[case(
        "[metadata]\nid = \"a\"\nversion = \"1\"\n[env]\nA = { random = true, length = 99999999999 }\n",
        "5:31: `env.A.length` is out of range: 99999999999 (at most 4294967295)"
    )]
    #[case(
        "[metadata]\nid = \"a\"\nversion = \"1\"\n[env]\nA = 99999999999999999999\n",
        "5:5: `env.A` is out of range: 99999999999999999999"
    )]
    #[case(
        "[metadata]\nid = \"a\"\nversion = \"1\"\n[docker]\nx = { y = [99999999999999999999] }\n",
        "5:12: `docker.x.y[0]` is out of range: 99999999999999999999"
    )]
    #[case(
        "[metadata]\nid = \"a\"\nversion = 99999999999999999999\n",
        "3:11: `metadata.version` must be a string, found the integer 99999999999999999999"
    )]
    #[case(
        "[metadata]\nid = \"a\"\nversion = \"1\"\n[healthcheck]\ncommand = \"true\"\ntimeout = 315360001\n",
        "6:11: `healthcheck.timeout` is out of range: 315360001 (at most 315360000)"
    )]
    #[case(
        "[metadata]\nid = \"a\"\nversion = \"1\"\n[healthcheck]\ncommand = \"true\"\nretries = 1000001\n",
        "6:11: `healthcheck.retries` is out of range: 1000001 (at most 1000000)"
    )]
    #[case(
        "[metadata]\nid = \"a\"\nversion = \"1\"\n[proxy]\nread-timeout = 0\n",
        "5:16: `proxy.read-timeout` is out of range: 0 (at least 1)"
    )]
    #[case(
        "[metadata]\nid = \"a\"\nversion = \"1\"\n[proxy]\nmax-body-mb = 2000000\n",
        "5:15: `proxy.max-body-mb` is out of range: 2000000 (at most 1048576)"
    )]
    fn bad_trees_are_reported_with_positions(#[case] text: &str, #[case] start: &str) {
        let found = problems(text);
        assert!(found.iter().any(|p| p.starts_with(start)), "{found:?}");
    }

    #[test]
    fn a_key_spelled_two_ways_is_given_twice() {
        let found = problems(&format!(
            "{HEAD}[build]\nsrc_url = \"a\"\nsrc-url = \"b\"\n"
        ));
        assert_eq!(
            found,
            ["5:1: `src_url` and `src-url` are the same key, given twice"]
        );
    }

    #[test]
    fn the_largest_healthcheck_values_are_valid() {
        let text = format!("{HEAD}[healthcheck]\ncommand = \"true\"\ninterval = 315360000\ntimeout = 0\nstart-period = 315360000\nretries = 1000000\n");
        assert_eq!(problems(&text), Vec::<String>::new());
        // Docker's nanoseconds and retries still fit.
        assert!(crate::services::MAX_SECONDS
            .checked_mul(1_000_000_000)
            .is_some_and(|ns| i64::try_from(ns).is_ok()));
        assert!(u32::try_from(crate::services::MAX_RETRIES).is_ok());
    }

    #[test]
    fn valid_trees_have_no_problems() {
        let text = format!("{HEAD}[env]\nA = 1\nB = {{ from = \"db\", key = \"x\" }}\n[port.web]\ncontainer = {{ key = \"A\" }}\nhost = \"auto\"\n");
        assert_eq!(problems(&text), Vec::<String>::new());
    }

    #[rstest]
    #[case("prots", &["port", "provider"], Some("port"))]
    #[case("zzz", &["port", "provider"], None)]
    fn suggestions_are_close_keys(
        #[case] key: &str,
        #[case] names: &[&str],
        #[case] want: Option<&str>,
    ) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        assert_eq!(did_you_mean(key, &names), want);
    }
}
