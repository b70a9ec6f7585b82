//! The environment of an instance's containers: each `[env]` value of the app and of its
//! providers (their modules' included) made into the text a container gets.
//!
//! - a literal is itself;
//! - `random` is generated once per instance and kept (encrypted) in the [`State`], so a
//!   redeploy or a restart finds the password its database was made with;
//! - `unique_user` / `unique_db` take the next number of a server-wide counter, once, and
//!   keep the name (`nua_user_3`, `nua_db_3`);
//! - `from` + `key` reads a property of another component: a provider's `hostname` (its
//!   name on the instance's network), its `port`, or one of its variables (so the app gets
//!   the password its database was given); with an empty or absent `from`, the deployment's
//!   own `domain`, `label` or `hostname`;
//! - `external_ip` is the server setting `NUA_EXTERNAL_IP` (never fetched from a web
//!   service); unset, it is an error that names the setting;
//! - `nua_internal` is not supported, and says what to use instead.
//!
//! Values referring to other components are resolved once those are; a cycle is an error.

use std::collections::{BTreeMap, BTreeSet};

use nua_config::{EnvKind, EnvValue};

use crate::state::{self, State};

/// The name of the app among the components (providers have their own names).
pub const APP: &str = "app";

/// One container of an instance and what its environment is made of.
#[derive(Debug, Clone)]
pub struct Component {
    /// [`APP`] or the provider's name.
    pub name: String,
    /// Its host name on the instance's network.
    pub hostname: String,
    /// Its first port (what `key = "port"` reads), if it has one.
    pub port: Option<u16>,
    pub env: BTreeMap<String, EnvValue>,
}

/// The deployment's own properties, for `from` left empty.
#[derive(Debug, Clone, Default)]
pub struct Deployment {
    pub label: String,
    pub domain: Option<String>,
    /// The server's external address (`NUA_EXTERNAL_IP`), when set.
    pub external_ip: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{component}` variable `{key}` reads `{key_read}` from `{from}`, which is not a provider of this app (it has: {known})")]
    UnknownComponent {
        component: String,
        key: String,
        from: String,
        key_read: String,
        known: String,
    },
    #[error("`{component}` variable `{key}` reads `{key_read}` from `{from}`, which has no such value (it has: {known})")]
    UnknownKey {
        component: String,
        key: String,
        from: String,
        key_read: String,
        known: String,
    },
    #[error("`{component}` variable `{key}` is the server's external address, and `NUA_EXTERNAL_IP` is not set")]
    NoExternalIp { component: String, key: String },
    #[error(
        "`{component}` variable `{key}` asks for `nua_internal`, which this Nua does not provide"
    )]
    NuaInternal { component: String, key: String },
    #[error("the variables {} read each other in a circle", cycle.join(", "))]
    Cycle { cycle: Vec<String> },
    #[error(transparent)]
    State(#[from] state::Error),
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NoExternalIp { .. } => {
                Some("set `NUA_EXTERNAL_IP` to the address clients reach this server at".into())
            }
            Error::NuaInternal { .. } => Some(
                "declare the service as a `[[provider]]` (a `module-name` such as `postgres`) \
                 and read its values with `from` and `key`"
                    .into(),
            ),
            Error::State(e) => e.hint(),
            _ => None,
        }
    }
}

/// The environment of every component of instance `deployment.label`, by component name,
/// each as `KEY=value` pairs in key order. Generated values are kept in `state`.
pub fn resolve(
    components: &[Component],
    deployment: &Deployment,
    state: &mut State,
) -> Result<BTreeMap<String, Vec<(String, String)>>, Error> {
    let mut done: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut left: Vec<(&Component, &String, &EnvValue)> = components
        .iter()
        .flat_map(|c| c.env.iter().map(move |(k, v)| (c, k, v)))
        .collect();
    while !left.is_empty() {
        let before = left.len();
        let mut waiting = Vec::new();
        for (component, key, value) in left {
            match value_of(component, key, value, components, deployment, &done, state)? {
                Some(text) => {
                    done.insert((component.name.clone(), key.clone()), text);
                }
                None => waiting.push((component, key, value)),
            }
        }
        if waiting.len() == before {
            let cycle = waiting
                .iter()
                .map(|(c, k, _)| format!("`{}.{k}`", c.name))
                .collect();
            return Err(Error::Cycle { cycle });
        }
        left = waiting;
    }
    let mut env: BTreeMap<String, Vec<(String, String)>> = components
        .iter()
        .map(|c| (c.name.clone(), Vec::new()))
        .collect();
    for ((component, key), value) in done {
        env.entry(component).or_default().push((key, value));
    }
    Ok(env)
}

/// The variables (component, key) that hold a secret: a `random` value, or one read with
/// `from` + `key` from a variable that holds one. A platform that can keep them apart from
/// the rest of the environment (Swarm secrets) does.
pub fn secret_keys(components: &[Component]) -> BTreeSet<(String, String)> {
    let mut secret: BTreeSet<(String, String)> = BTreeSet::new();
    // Each round marks the variables that read one marked in the round before; a chain of
    // reads is at most as long as there are variables.
    loop {
        let before = secret.len();
        for component in components {
            for (key, value) in &component.env {
                let EnvValue::Spec(spec) = value else {
                    continue;
                };
                let holds = match value.kind() {
                    EnvKind::Random => true,
                    EnvKind::From => {
                        let from = spec.from.clone().unwrap_or_default();
                        let read = spec.key.clone().unwrap_or_default();
                        secret.contains(&(from, read))
                    }
                    _ => false,
                };
                if holds {
                    secret.insert((component.name.clone(), key.clone()));
                }
            }
        }
        if secret.len() == before {
            return secret;
        }
    }
}

/// The text of one value; `None` while it reads a value not resolved yet.
fn value_of(
    component: &Component,
    key: &str,
    value: &EnvValue,
    components: &[Component],
    deployment: &Deployment,
    done: &BTreeMap<(String, String), String>,
    state: &mut State,
) -> Result<Option<String>, Error> {
    let label = &deployment.label;
    let kept = |what: &str| format!("{}/{key}/{what}", component.name);
    let EnvValue::Spec(spec) = value else {
        return Ok(value.literal());
    };
    let text = match value.kind() {
        EnvKind::Plain => value.literal().unwrap_or_default(),
        EnvKind::Random => {
            let length = spec.length.unwrap_or(24) as usize;
            state.secret_or_insert(label, &kept("random"), || random_value(length))?
        }
        EnvKind::UniqueUser => unique(state, label, &kept("unique"), "user")?,
        EnvKind::UniqueDb => unique(state, label, &kept("unique"), "db")?,
        EnvKind::ExternalIp => match &deployment.external_ip {
            Some(ip) => ip.clone(),
            None => {
                return Err(Error::NoExternalIp {
                    component: component.name.clone(),
                    key: key.to_owned(),
                })
            }
        },
        EnvKind::NuaInternal => {
            return Err(Error::NuaInternal {
                component: component.name.clone(),
                key: key.to_owned(),
            })
        }
        EnvKind::From => {
            let read = spec.key.clone().unwrap_or_default();
            let from = spec.from.clone().unwrap_or_default();
            return from_value(component, key, &from, &read, components, deployment, done);
        }
    };
    Ok(Some(text))
}

/// `from` + `key`: a property or variable of another component, or of the deployment.
fn from_value(
    component: &Component,
    key: &str,
    from: &str,
    read: &str,
    components: &[Component],
    deployment: &Deployment,
    done: &BTreeMap<(String, String), String>,
) -> Result<Option<String>, Error> {
    if from.is_empty() {
        let value = match read {
            "label" => Some(deployment.label.clone()),
            "domain" => deployment.domain.clone(),
            "hostname" => components
                .iter()
                .find(|c| c.name == APP)
                .map(|c| c.hostname.clone()),
            _ => None,
        };
        return value.map(Some).ok_or_else(|| Error::UnknownKey {
            component: component.name.clone(),
            key: key.to_owned(),
            from: "the deployment".to_owned(),
            key_read: read.to_owned(),
            known: "label, domain (when it has one), hostname".to_owned(),
        });
    }
    let Some(source) = components.iter().find(|c| c.name == from) else {
        let known: Vec<&str> = components
            .iter()
            .filter(|c| c.name != APP)
            .map(|c| c.name.as_str())
            .collect();
        return Err(Error::UnknownComponent {
            component: component.name.clone(),
            key: key.to_owned(),
            from: from.to_owned(),
            key_read: read.to_owned(),
            known: if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            },
        });
    };
    match read {
        "hostname" => return Ok(Some(source.hostname.clone())),
        "port" if source.port.is_some() => return Ok(source.port.map(|p| p.to_string())),
        _ => {}
    }
    if source.env.contains_key(read) {
        return Ok(done.get(&(source.name.clone(), read.to_owned())).cloned());
    }
    let mut known = vec!["hostname".to_owned()];
    known.extend(source.port.map(|_| "port".to_owned()));
    known.extend(source.env.keys().cloned());
    Err(Error::UnknownKey {
        component: component.name.clone(),
        key: key.to_owned(),
        from: from.to_owned(),
        key_read: read.to_owned(),
        known: known.join(", "),
    })
}

/// A name unique on this server (`nua_user_4`), made once for this value and kept.
fn unique(state: &mut State, label: &str, kept: &str, what: &str) -> Result<String, Error> {
    if let Some(name) = state.secret(label, kept)? {
        return Ok(name);
    }
    let number = state.next_counter(&format!("unique_{what}"))?;
    Ok(state.secret_or_insert(label, kept, || format!("nua_{what}_{number}"))?)
}

/// A random alphanumeric value of `length` characters, from the kernel's generator.
pub fn random_value(length: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut value = String::with_capacity(length);
    let mut bytes = [0u8; 64];
    while value.len() < length {
        getrandom::fill(&mut bytes).expect("the kernel's random generator answers");
        // 62 * 4 = 248: the bytes above are dropped so that every character is as likely.
        let wanted = length - value.len();
        value.extend(
            bytes
                .iter()
                .filter(|b| **b < 248)
                .map(|b| ALPHABET[(b % 62) as usize] as char)
                .take(wanted),
        );
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(text: &str) -> BTreeMap<String, EnvValue> {
        #[derive(serde::Deserialize)]
        struct Env {
            env: BTreeMap<String, EnvValue>,
        }
        toml::from_str::<Env>(text).unwrap().env
    }

    fn component(name: &str, port: Option<u16>, text: &str) -> Component {
        Component {
            name: name.into(),
            hostname: name.into(),
            port,
            env: env(text),
        }
    }

    fn postgres_app() -> Vec<Component> {
        vec![
            component(
                APP,
                Some(5000),
                "[env]\nDB_HOST = { from = \"database\", key = \"hostname\" }\n\
                 DB_PORT = { from = \"database\", key = \"port\" }\n\
                 DB_PASSWORD = { from = \"database\", key = \"POSTGRES_PASSWORD\" }\n\
                 DB_USER = { from = \"database\", key = \"POSTGRES_USER\" }\n\
                 SITE = { from = \"\", key = \"domain\" }\nMODE = \"prod\"\n",
            ),
            component(
                "database",
                Some(5432),
                "[env]\nPOSTGRES_PASSWORD = { random = true, length = 24 }\n\
                 POSTGRES_USER = { unique_user = true }\n\
                 POSTGRES_DB = { unique_db = true }\n",
            ),
        ]
    }

    fn deployment(label: &str) -> Deployment {
        Deployment {
            label: label.into(),
            domain: Some(format!("{label}.example.com")),
            external_ip: None,
        }
    }

    fn get<'a>(env: &'a BTreeMap<String, Vec<(String, String)>>, c: &str, k: &str) -> &'a str {
        &env[c].iter().find(|(key, _)| key == k).unwrap().1
    }

    #[test]
    fn a_random_value_and_what_reads_it_are_secrets_and_nothing_else() {
        let mut components = postgres_app();
        // A chain: the app's copy of the password is read by a third component.
        components.push(component(
            "worker",
            None,
            "[env]\nPASSWORD = { from = \"app\", key = \"DB_PASSWORD\" }\n\
             HOST = { from = \"database\", key = \"hostname\" }\n",
        ));
        let secret = secret_keys(&components);
        let expected: BTreeSet<(String, String)> = [
            ("app", "DB_PASSWORD"),
            ("database", "POSTGRES_PASSWORD"),
            ("worker", "PASSWORD"),
        ]
        .iter()
        .map(|(c, k)| ((*c).to_owned(), (*k).to_owned()))
        .collect();
        assert_eq!(secret, expected);
    }

    #[test]
    fn the_app_reads_what_its_provider_was_given_and_values_are_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let mut state = State::open(tmp.path()).unwrap();
        let components = postgres_app();
        let one = resolve(&components, &deployment("one"), &mut state).unwrap();
        let password = get(&one, "database", "POSTGRES_PASSWORD");
        assert_eq!(password.len(), 24);
        assert!(password.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(get(&one, APP, "DB_PASSWORD"), password);
        assert_eq!(
            get(&one, APP, "DB_USER"),
            get(&one, "database", "POSTGRES_USER")
        );
        assert_eq!(get(&one, APP, "DB_HOST"), "database");
        assert_eq!(get(&one, APP, "DB_PORT"), "5432");
        assert_eq!(get(&one, APP, "SITE"), "one.example.com");
        assert_eq!(get(&one, APP, "MODE"), "prod");
        assert_eq!(get(&one, "database", "POSTGRES_USER"), "nua_user_1");

        // A redeploy (another process, the same state) gets the same values.
        drop(state);
        let mut state = State::open(tmp.path()).unwrap();
        let again = resolve(&components, &deployment("one"), &mut state).unwrap();
        assert_eq!(again, one);

        // Another instance of the same app shares nothing.
        let two = resolve(&components, &deployment("two"), &mut state).unwrap();
        assert_ne!(
            get(&two, "database", "POSTGRES_PASSWORD"),
            get(&one, "database", "POSTGRES_PASSWORD")
        );
        assert_eq!(get(&two, "database", "POSTGRES_USER"), "nua_user_2");
        assert_eq!(get(&two, "database", "POSTGRES_DB"), "nua_db_2");
    }

    #[test]
    fn a_wrong_reference_names_the_component_and_what_exists() {
        let tmp = tempfile::tempdir().unwrap();
        let mut state = State::open(tmp.path()).unwrap();
        let mut components = postgres_app();
        components[0].env = env("[env]\nX = { from = \"databse\", key = \"hostname\" }\n");
        let err = resolve(&components, &deployment("a"), &mut state).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`app` variable `X` reads `hostname` from `databse`, which is not a provider of \
             this app (it has: database)"
        );
        components[0].env = env("[env]\nX = { from = \"database\", key = \"PASSWORD\" }\n");
        let err = resolve(&components, &deployment("a"), &mut state).unwrap_err();
        assert!(
            err.to_string().contains(
                "(it has: hostname, port, POSTGRES_DB, POSTGRES_PASSWORD, POSTGRES_USER)"
            ),
            "{err}"
        );
    }

    #[test]
    fn external_ip_is_a_setting_and_nua_internal_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut state = State::open(tmp.path()).unwrap();
        let components = vec![component(APP, None, "[env]\nIP = { external_ip = true }\n")];
        let err = resolve(&components, &deployment("a"), &mut state).unwrap_err();
        assert!(
            err.to_string().contains("`NUA_EXTERNAL_IP` is not set"),
            "{err}"
        );
        assert!(err.hint().unwrap().contains("NUA_EXTERNAL_IP"));
        let with_ip = Deployment {
            external_ip: Some("203.0.113.7".into()),
            ..deployment("a")
        };
        let env = resolve(&components, &with_ip, &mut state).unwrap();
        assert_eq!(get(&env, APP, "IP"), "203.0.113.7");
        let internal = vec![component(APP, None, "[env]\nS = { nua_internal = true }\n")];
        let err = resolve(&internal, &deployment("a"), &mut state).unwrap_err();
        assert!(err.hint().unwrap().contains("[[provider]]"), "{err}");
    }

    #[test]
    fn values_reading_each_other_in_a_circle_are_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let mut state = State::open(tmp.path()).unwrap();
        let components = vec![
            component(APP, None, "[env]\nA = { from = \"db\", key = \"B\" }\n"),
            component("db", None, "[env]\nB = { from = \"app\", key = \"A\" }\n"),
        ];
        let err = resolve(&components, &deployment("a"), &mut state).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the variables `app.A`, `db.B` read each other in a circle"
        );
    }
}
