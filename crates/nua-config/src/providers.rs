//! Built-in provider modules and how a `[[provider]]` uses one.
//!
//! A provider with `module-name = "postgres"` starts from the module's definition (type,
//! network, connector, env, docker options, volumes, license); every key the provider writes
//! itself wins, tables merged key by key and lists replaced whole. `module-version` (a
//! requirement such as `>=14, <15`) picks the highest matching entry of the module's
//! `module-versions`, whose `link` becomes `build.base-image` unless the provider sets one.

use serde_json::Value;

/// The modules, embedded at compile time: `(name, TOML definition)`.
pub const MODULES: &[(&str, &str)] = &[
    ("mariadb", include_str!("modules/mariadb.toml")),
    ("mongo", include_str!("modules/mongo.toml")),
    ("postgres", include_str!("modules/postgres.toml")),
    ("redis-cache", include_str!("modules/redis-cache.toml")),
    ("sqlite", include_str!("modules/sqlite.toml")),
];

/// The definition of module `name`, as JSON, if there is such a module.
pub fn module(name: &str) -> Option<Value> {
    let (_, text) = MODULES.iter().find(|(n, _)| *n == name)?;
    Some(toml::from_str(text).expect("built-in modules are valid TOML"))
}

/// Why a provider could not use its module; the key it concerns, for the position.
#[derive(Debug, PartialEq)]
pub(crate) struct MergeError {
    pub key: &'static str,
    pub message: String,
    pub hint: String,
}

/// Fill a provider (JSON, as written) from its module, if it names one.
pub(crate) fn merge_module(provider: &Value) -> Result<Value, MergeError> {
    let Some(name) = provider.get("module-name").and_then(Value::as_str) else {
        return Ok(provider.clone());
    };
    let names: Vec<String> = MODULES.iter().map(|(n, _)| n.to_string()).collect();
    let Some(mut merged) = module(name) else {
        let hint = match super::messages::did_you_mean(name, &names) {
            Some(near) => format!("did you mean `{near}`?"),
            None => format!("the modules are {}", names.join(", ")),
        };
        return Err(MergeError {
            key: "module-name",
            message: format!("unknown provider module `{name}`"),
            hint,
        });
    };
    let requirement = provider.get("module-version").and_then(Value::as_str);
    if let Some(versions) = merged.get("module-versions").and_then(Value::as_array) {
        let chosen = choose_version(versions, requirement.unwrap_or("")).map_err(|message| {
            let offered: Vec<&str> = versions
                .iter()
                .filter_map(|v| v.get("version").and_then(Value::as_str))
                .collect();
            MergeError {
                key: "module-version",
                message,
                hint: format!("module `{name}` offers {}", offered.join(", ")),
            }
        })?;
        if let Some(link) = chosen.get("link").cloned() {
            let build = merged
                .as_object_mut()
                .expect("a table")
                .entry("build")
                .or_insert_with(|| Value::Object(Default::default()));
            build
                .as_object_mut()
                .expect("a table")
                .insert("base-image".into(), link);
        }
    }
    deep_merge(&mut merged, provider);
    Ok(merged)
}

/// Overlay `over` on `base`: tables merged key by key, anything else replaced.
fn deep_merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// The highest version of `versions` that meets `requirement` (all versions if it is empty).
fn choose_version<'v>(versions: &'v [Value], requirement: &str) -> Result<&'v Value, String> {
    let comparators = parse_requirement(requirement)?;
    versions
        .iter()
        .filter_map(|v| Some((numbers(v.get("version")?.as_str()?)?, v)))
        .filter(|(n, _)| comparators.iter().all(|c| c.matches(n)))
        .max_by(|a, b| cmp(&a.0, &b.0))
        .map(|(_, v)| v)
        .ok_or_else(|| format!("no version of the module meets `{requirement}`"))
}

/// Whether `version` (`10.11`) meets `requirement` (`>=10.6`; empty: any); a requirement
/// that cannot be read is met by nothing.
pub fn meets(requirement: &str, version: &str) -> bool {
    match (parse_requirement(requirement), numbers(version)) {
        (Ok(comparators), Some(v)) => comparators.iter().all(|c| c.matches(&v)),
        _ => false,
    }
}

#[derive(Debug)]
struct Comparator {
    op: &'static str,
    version: Vec<u64>,
}

/// `>=10.6, <10.7` → comparators. Operators: `>=`, `<=`, `>`, `<`, `==` (or `=`), `!=`; a bare
/// version matches itself and every version it prefixes (`14` matches `14.6`).
fn parse_requirement(text: &str) -> Result<Vec<Comparator>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let op = [">=", "<=", "==", "!=", ">", "<", "="]
            .into_iter()
            .find(|op| part.starts_with(op))
            .unwrap_or("");
        let version = numbers(part[op.len()..].trim())
            .ok_or_else(|| format!("`{part}` is not a version requirement (e.g. `>=14, <15`)"))?;
        out.push(Comparator { op, version });
    }
    Ok(out)
}

fn numbers(version: &str) -> Option<Vec<u64>> {
    version.split('.').map(|p| p.parse().ok()).collect()
}

fn cmp(a: &[u64], b: &[u64]) -> std::cmp::Ordering {
    let len = a.len().max(b.len());
    let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    (0..len)
        .map(|i| at(a, i).cmp(&at(b, i)))
        .find(|o| o.is_ne())
        .unwrap_or(std::cmp::Ordering::Equal)
}

impl Comparator {
    fn matches(&self, v: &[u64]) -> bool {
        use std::cmp::Ordering::*;
        let o = cmp(v, &self.version);
        match self.op {
            ">=" => o != Less,
            "<=" => o != Greater,
            ">" => o == Greater,
            "<" => o == Less,
            "==" | "=" => o == Equal,
            "!=" => o != Equal,
            _ => v.starts_with(&self.version),
        }
    }
}

/// The first dependency cycle between providers, as names (`[a, b, a]`). Provider `a`
/// depends on `b` when an env value of `a` says `from = "b"`.
pub(crate) fn find_cycle(deps: &[(String, Vec<String>)]) -> Option<Vec<String>> {
    fn visit(
        at: usize,
        deps: &[(String, Vec<String>)],
        stack: &mut Vec<usize>,
        done: &mut Vec<bool>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| *s == at) {
            let mut cycle: Vec<String> = stack[i..].iter().map(|s| deps[*s].0.clone()).collect();
            cycle.push(deps[at].0.clone());
            return Some(cycle);
        }
        if done[at] {
            return None;
        }
        stack.push(at);
        for dep in &deps[at].1 {
            if let Some(j) = deps.iter().position(|(n, _)| n == dep) {
                if let Some(c) = visit(j, deps, stack, done) {
                    return Some(c);
                }
            }
        }
        stack.pop();
        done[at] = true;
        None
    }
    let mut done = vec![false; deps.len()];
    (0..deps.len()).find_map(|i| visit(i, deps, &mut Vec::new(), &mut done))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    #[rstest]
    #[case(">=10.6", "10.11", true)]
    #[case(">=10.6, <10.7", "10.11", false)]
    #[case("", "10.11", true)]
    #[case(">=15, <16", "15", true)]
    #[case(">=14, <15", "15", false)]
    #[case(">=7", "7.0", true)]
    #[case("not a requirement", "7.0", false)]
    fn a_version_meets_a_requirement(
        #[case] requirement: &str,
        #[case] version: &str,
        #[case] met: bool,
    ) {
        assert_eq!(meets(requirement, version), met);
    }

    #[rstest]
    #[case("postgres", ">=14, <15", "docker.io/library/postgres:14.6")]
    #[case("postgres", "", "docker.io/library/postgres:15.1")]
    #[case("mariadb", ">=10.6, <10.7", "docker.io/library/mariadb:10.6")]
    #[case("mariadb", ">10.9", "docker.io/library/mariadb:10.10")]
    #[case("redis-cache", ">=7", "docker.io/amd64/redis:7.0.8")]
    #[case("redis-cache", "6", "docker.io/amd64/redis:6.2.10")]
    #[case("mongo", ">=5, <6", "docker.io/library/mongo:5.0.15")]
    fn module_version_picks_the_highest_match(
        #[case] name: &str,
        #[case] req: &str,
        #[case] image: &str,
    ) {
        let merged =
            merge_module(&json!({"name": "db", "module-name": name, "module-version": req}))
                .unwrap();
        assert_eq!(merged["build"]["base-image"], image);
    }

    #[test]
    fn the_provider_wins_over_its_module() {
        let p = json!({"name": "db", "module-name": "postgres", "env": {"POSTGRES_PORT": "6000"}, "docker": {"detach": false}});
        let merged = merge_module(&p).unwrap();
        assert_eq!(merged["env"]["POSTGRES_PORT"], "6000");
        assert_eq!(merged["env"]["POSTGRES_USER"]["unique_user"], true);
        assert_eq!(
            merged["docker"],
            json!({"detach": false, "restart_policy": {"name": "always"}})
        );
    }

    #[rstest]
    #[case(json!({"name": "db", "module-name": "postgress"}), "module-name")]
    #[case(json!({"name": "db", "module-name": "postgres", "module-version": ">=99"}), "module-version")]
    #[case(json!({"name": "db", "module-name": "postgres", "module-version": "latest"}), "module-version")]
    fn bad_module_references_fail(#[case] provider: Value, #[case] key: &str) {
        assert_eq!(merge_module(&provider).unwrap_err().key, key);
    }

    #[test]
    fn cycles_are_found() {
        let deps = |v: &[(&str, &[&str])]| -> Vec<(String, Vec<String>)> {
            v.iter()
                .map(|(n, d)| (n.to_string(), d.iter().map(|s| s.to_string()).collect()))
                .collect()
        };
        assert_eq!(
            find_cycle(&deps(&[("a", &["b"]), ("b", &["a"])])).unwrap(),
            ["a", "b", "a"]
        );
        assert_eq!(find_cycle(&deps(&[("a", &["b"]), ("b", &["data"])])), None);
    }
}
