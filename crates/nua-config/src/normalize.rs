//! Normalization of a deserialized config: placeholders expanded, ports and volumes
//! completed with their defaults, the build method made explicit, the checksum in canonical
//! form; and the checks that need the whole config (the image name and tag it makes,
//! duplicate providers, dependency cycles, where a port is published). Problems carry the
//! path of the key they concern; the caller turns paths into positions.

use std::collections::BTreeMap;

use super::image_name;
use super::model::{BuildMethod, EnvValue, NuaConfig};
use super::services::{Port, Protocol, Volume, VolumeType};

/// A problem at a path of keys (`["build", "src-checksum"]`).
#[derive(Debug, PartialEq)]
pub(crate) struct Issue {
    pub path: Vec<String>,
    pub message: String,
    pub hint: Option<String>,
}

fn issue(path: &[&str], message: String, hint: Option<String>) -> Issue {
    Issue {
        path: path.iter().map(|s| s.to_string()).collect(),
        message,
        hint,
    }
}

/// Normalize `config` in place; the issues found, none if it is valid.
pub(crate) fn normalize(config: &mut NuaConfig) -> Vec<Issue> {
    let mut issues = Vec::new();
    check_image_name(config, &mut issues);
    normalize_build(config, &mut issues);
    normalize_ports(&mut config.port, &["port"], &mut issues);
    normalize_volumes(&mut config.volume, &["volume"], &mut issues);
    normalize_providers(config, &mut issues);
    check_env_sources(config, &mut issues);
    check_provider_cycle(config, &mut issues);
    issues
}

/// `metadata.id` and the version must make the image name `nua-<id>:<version>-<release>`.
fn check_image_name(config: &NuaConfig, issues: &mut Vec<Issue>) {
    let meta = &config.metadata;
    if let Some((message, hint)) = image_name::id_problem(&meta.id) {
        issues.push(issue(&["metadata", "id"], message, Some(hint)));
    }
    if let Some((message, hint)) = image_name::tag_problem(&meta.version, meta.release) {
        issues.push(issue(&["metadata", "version"], message, Some(hint)));
    }
}

/// `[build]`: placeholders expanded, the checksum as bare lowercase hex, the method explicit.
fn normalize_build(config: &mut NuaConfig, issues: &mut Vec<Issue>) {
    let vars = metadata_vars(config);
    let build = &mut config.build;
    for (key, field) in [
        ("src-url", &mut build.src_url),
        ("git-url", &mut build.git_url),
        ("git-branch", &mut build.git_branch),
        ("base-image", &mut build.base_image),
        ("project", &mut build.project),
    ] {
        if let Some(value) = field.as_mut() {
            match expand_placeholders(value, &vars) {
                Ok(expanded) => *value = expanded,
                Err((message, hint)) => issues.push(issue(
                    &["build", key],
                    format!("in `build.{key}`: {message}"),
                    Some(hint),
                )),
            }
        }
    }
    if let Some(sum) = build.src_checksum.as_mut() {
        normalize_checksum(sum, issues);
    }
    match (build.method, build.base_image.is_some()) {
        (None, wrap) => {
            build.method = Some(if wrap {
                BuildMethod::Wrap
            } else {
                BuildMethod::Build
            })
        }
        (Some(BuildMethod::Wrap), false) => issues.push(issue(
            &["build", "method"],
            "`build.method` is `wrap` but there is no `build.base-image` to wrap".into(),
            Some("set `base-image` in `[build]`, or use method `build`".into()),
        )),
        _ => {}
    }
}

/// `build.src-checksum`: 64 hexadecimal characters, lower case, without `sha256:`.
fn normalize_checksum(sum: &mut String, issues: &mut Vec<Issue>) {
    let lower = sum.trim().to_lowercase();
    let hex = lower.strip_prefix("sha256:").unwrap_or(&lower).to_string();
    let found = match hex.chars().find(|c| !c.is_ascii_hexdigit()) {
        Some(c) => Some(format!("`{c}`, which is not hexadecimal")),
        None if hex.len() != 64 => Some(format!("{} characters", hex.len())),
        None => None,
    };
    if let Some(found) = found {
        issues.push(issue(
            &["build", "src-checksum"],
            format!("`build.src-checksum` must be a SHA-256 digest of 64 hexadecimal characters, found {found}"),
            Some("compute it with `sha256sum <archive>`".into()),
        ));
    }
    *sum = hex;
}

/// Each provider: a name of its own, its ports and volumes normalized.
fn normalize_providers(config: &mut NuaConfig, issues: &mut Vec<Issue>) {
    let mut names: Vec<&str> = Vec::new();
    for (i, p) in config.provider.iter_mut().enumerate() {
        let index = i.to_string();
        if names.contains(&p.name.as_str()) {
            issues.push(issue(
                &["provider", &index, "name"],
                format!("two providers are named `{}`", p.name),
                Some("give each `[[provider]]` its own `name`".into()),
            ));
        }
        names.push(&p.name);
        normalize_ports(&mut p.port, &["provider", &index, "port"], issues);
        normalize_volumes(&mut p.volume, &["provider", &index, "volume"], issues);
    }
}

/// Providers whose env `from` lead back to themselves, pointed at the `from` that starts it.
fn check_provider_cycle(config: &NuaConfig, issues: &mut Vec<Issue>) {
    let Some(cycle) = super::providers::find_cycle(&dependencies(config)) else {
        return;
    };
    let first = config
        .provider
        .iter()
        .position(|p| p.name == cycle[0])
        .unwrap_or(0);
    let key = config.provider[first]
        .env
        .iter()
        .find_map(|(k, v)| match v {
            EnvValue::Spec(s) if s.from.as_deref() == Some(cycle[1].as_str()) => Some(k.clone()),
            _ => None,
        });
    let index = first.to_string();
    let mut path = vec!["provider", &index, "env"];
    if let Some(key) = &key {
        path.extend([key.as_str(), "from"]);
    }
    issues.push(issue(
        &path,
        format!(
            "providers depend on each other in a cycle: {}",
            cycle.join(" → ")
        ),
        Some(
            "a provider's env `from` must not lead back to itself; remove one of these references"
                .into(),
        ),
    ));
}

/// Volume type defaults to `managed`; a `directory` or `bind` volume names the host folder.
fn normalize_volumes(volumes: &mut [Volume], at: &[&str], issues: &mut Vec<Issue>) {
    for (i, v) in volumes.iter_mut().enumerate() {
        let kind = *v.kind.get_or_insert(VolumeType::Managed);
        if matches!(kind, VolumeType::Directory | VolumeType::Bind) && v.name.is_none() {
            let index = i.to_string();
            let mut path = at.to_vec();
            path.extend([index.as_str(), "type"]);
            let word = if kind == VolumeType::Bind {
                "bind"
            } else {
                "directory"
            };
            issues.push(issue(
                &path,
                format!("a `{word}` volume mounts a host folder, but `name` does not say which"),
                Some(format!(
                    "add `name = \"/path/on/the/host\"` to this `[[volume]]` (target `{}`)",
                    v.target
                )),
            ));
        }
    }
}

/// An env value of the app taking its value `from` something that is neither a provider nor
/// a volume is a typo: nothing would provide it at deployment.
fn check_env_sources(config: &NuaConfig, issues: &mut Vec<Issue>) {
    let mut sources: Vec<String> = config.provider.iter().map(|p| p.name.clone()).collect();
    sources.extend(config.volume.iter().filter_map(|v| v.name.clone()));
    for (key, value) in &config.env {
        let EnvValue::Spec(spec) = value else {
            continue;
        };
        let Some(from) = spec.from.as_deref().filter(|f| !f.is_empty()) else {
            continue;
        };
        if !sources.iter().any(|s| s == from) {
            let hint = match super::messages::did_you_mean(from, &sources) {
                Some(near) => format!("did you mean `{near}`?"),
                None => "declare a `[[provider]]` with that name, or use `from = \"\"` for a value of the deployment".into(),
            };
            issues.push(issue(
                &["env", key, "from"],
                format!("`env.{key}` takes its value from `{from}`, but there is no provider or volume named `{from}`"),
                Some(hint),
            ));
        }
    }
}

/// For each provider, the other providers its env takes values `from`.
fn dependencies(config: &NuaConfig) -> Vec<(String, Vec<String>)> {
    let names: Vec<&String> = config.provider.iter().map(|p| &p.name).collect();
    config
        .provider
        .iter()
        .map(|p| {
            let deps = p
                .env
                .values()
                .filter_map(|v| match v {
                    EnvValue::Spec(s) => s.from.clone(),
                    _ => None,
                })
                .filter(|from| from != &p.name && names.contains(&from))
                .collect();
            (p.name.clone(), deps)
        })
        .collect()
}

fn normalize_ports(ports: &mut BTreeMap<String, Port>, at: &[&str], issues: &mut Vec<Issue>) {
    for (name, port) in ports.iter_mut() {
        port.protocol.get_or_insert(Protocol::Tcp);
        port.ssl.get_or_insert(true);
        let web = *port
            .web
            .get_or_insert(name == "web" || port.proxy.is_some());
        if !web && port.host.is_none() && port.proxy.is_none() {
            let mut path: Vec<&str> = at.to_vec();
            path.push(name);
            issues.push(issue(
                &path,
                format!("port `{name}` is not a web port and is published nowhere: it needs `host` or `proxy`"),
                Some(format!("add `host = <port>` (or `host = \"auto\"`) to `[{}]`, or name it `web`", path.join("."))),
            ));
        }
    }
}

/// The metadata values usable as `{placeholders}`: strings and numbers.
pub(crate) fn metadata_vars(config: &NuaConfig) -> BTreeMap<String, String> {
    let json = serde_json::to_value(&config.metadata).unwrap_or_default();
    let mut vars = BTreeMap::new();
    for (k, v) in json.as_object().into_iter().flatten() {
        match v {
            serde_json::Value::String(s) => vars.insert(k.clone(), s.clone()),
            serde_json::Value::Number(n) => vars.insert(k.clone(), n.to_string()),
            _ => None,
        };
    }
    vars
}

/// Replace `{name}` by `vars[name]`; `{{` and `}}` are literal braces (Python's `str.format`
/// rules, which the original used). On error, the message and a hint.
pub fn expand_placeholders(
    template: &str,
    vars: &BTreeMap<String, String>,
) -> Result<String, (String, String)> {
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let name: String = chars.by_ref().take_while(|c| *c != '}').collect();
                match vars.get(name.trim()) {
                    Some(v) => out.push_str(v),
                    None => {
                        let known: Vec<String> = vars.keys().map(|k| format!("{{{k}}}")).collect();
                        return Err((
                            format!("unknown placeholder `{{{name}}}`"),
                            format!(
                                "use one of {}, or write `{{{{` and `}}}}` for literal braces",
                                known.join(", ")
                            ),
                        ));
                    }
                }
            }
            '}' => {
                return Err((
                    "a `}` without its `{`".into(),
                    "write `}}` for a literal `}`".into(),
                ));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn vars() -> BTreeMap<String, String> {
        [("id", "app"), ("version", "1.2")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect()
    }

    #[rstest]
    #[case("https://x/v{version}.tar.gz", "https://x/v1.2.tar.gz")]
    #[case("{id}:{version}", "app:1.2")]
    #[case("a{{b}}c", "a{b}c")]
    #[case("{{{version}}}", "{1.2}")]
    #[case("plain", "plain")]
    fn placeholders_expand(#[case] template: &str, #[case] want: &str) {
        assert_eq!(expand_placeholders(template, &vars()).unwrap(), want);
    }

    #[rstest]
    #[case("{nope}", "unknown placeholder `{nope}`")]
    #[case("a}b", "a `}` without its `{`")]
    fn bad_placeholders_fail(#[case] template: &str, #[case] want: &str) {
        assert_eq!(expand_placeholders(template, &vars()).unwrap_err().0, want);
    }

    fn port(toml: &str) -> Port {
        toml::from_str(toml).unwrap()
    }

    #[rstest]
    #[case("web", "container = 80", Some(true))]
    #[case("other", "container = 80\nproxy = 8080", Some(true))]
    #[case("smtp", "container = 25\nhost = 25\nssl = false", Some(false))]
    #[case("smtp", "container = 25", None)]
    fn ports_get_their_defaults(#[case] name: &str, #[case] toml: &str, #[case] web: Option<bool>) {
        let mut ports = BTreeMap::from([(name.to_string(), port(toml))]);
        let mut issues = Vec::new();
        normalize_ports(&mut ports, &["port"], &mut issues);
        assert_eq!(issues.is_empty(), web.is_some(), "{issues:?}");
        let p = &ports[name];
        assert_eq!(p.protocol, Some(Protocol::Tcp));
        if let Some(web) = web {
            assert_eq!(p.web, Some(web));
        }
    }
}
