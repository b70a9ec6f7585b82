//! Credentials and authentication challenges.
//!
//! Where credentials come from, in order: the command line (`--username` with
//! `--password-stdin`); else Docker's `config.json` (in `DOCKER_CONFIG` or `~/.docker`, the
//! caller resolves the folder): `credHelpers[registry]`, then `auths[registry].auth`
//! (base64 of `user:password`), then `credsStore`. A helper is run as
//! `docker-credential-<name> get` with the server URL on stdin and answers
//! `{"Username": …, "Secret": …}` on stdout (docker-credential-helpers' protocol).
//!
//! Secrets live in [`Secret`], whose `Debug` and `Display` print `***`; errors name the
//! source of a credential, never its value.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;

use super::error::{Error, Result};
use super::reference::DOCKER_HUB;

/// The key Docker uses for Docker Hub in `config.json` and with credential helpers.
const DOCKER_HUB_CONFIG_KEY: &str = "https://index.docker.io/v1/";

/// A password or token: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where a credential came from: what errors name instead of the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// No credentials: anonymous access.
    Anonymous,
    /// `--username` and `--password-stdin`.
    CommandLine,
    /// `auths` of a Docker `config.json`.
    DockerConfig { path: PathBuf },
    /// A `docker-credential-<name>` helper (`credHelpers` or `credsStore`).
    Helper { name: String },
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Anonymous => f.write_str("no credentials (anonymous access)"),
            CredentialSource::CommandLine => f.write_str("`--username` and `--password-stdin`"),
            CredentialSource::DockerConfig { path } => {
                write!(f, "`auths` of `{}`", path.display())
            }
            CredentialSource::Helper { name } => {
                write!(f, "the credential helper `docker-credential-{name}`")
            }
        }
    }
}

/// A user name and password, and where they came from.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
    pub source: CredentialSource,
}

impl Credentials {
    /// `Basic base64(user:password)`.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password.expose());
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// What the caller knows about credentials: the command line's, and Docker's config folder.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// From `--username` and `--password-stdin`.
    pub explicit: Option<(String, Secret)>,
    /// The registry `explicit` is for (the command's own reference); `None`: every registry.
    /// A wrap build pushing elsewhere must not hand the push password to the base's registry.
    pub explicit_registry: Option<String>,
    /// The folder of Docker's `config.json` (`DOCKER_CONFIG`, else `~/.docker`).
    pub docker_config_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

impl AuthConfig {
    /// The credentials for `registry` (as written in references: `docker.io`, `host:port`),
    /// or `None`; `Err` when a source exists but cannot be read.
    pub fn lookup(&self, registry: &str) -> Result<Option<Credentials>> {
        let ours = self
            .explicit_registry
            .as_deref()
            .is_none_or(|r| r == registry);
        if let Some((username, password)) = self.explicit.as_ref().filter(|_| ours) {
            return Ok(Some(Credentials {
                username: username.clone(),
                password: password.clone(),
                source: CredentialSource::CommandLine,
            }));
        }
        let Some(dir) = &self.docker_config_dir else {
            return Ok(None);
        };
        let path = dir.join("config.json");
        let config = match fs_err::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<DockerConfig>(&bytes).map_err(|e| Error::Credentials {
                    credentials: CredentialSource::DockerConfig { path: path.clone() },
                    // Position only: serde's message may quote a value, and values are secrets.
                    reason: format!("invalid JSON at line {}, column {}", e.line(), e.column()),
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::Io {
                    path,
                    source: std::io::Error::new(e.kind(), e.to_string()),
                })
            }
        };
        let keys = config_keys(registry);
        if let Some(helper) = keys.iter().find_map(|k| config.cred_helpers.get(k)) {
            return run_helper(helper, &keys[0]);
        }
        for key in &keys {
            if let Some(auth) = config.auths.get(key).and_then(|e| e.auth.as_deref()) {
                return decode_auth(auth, &path).map(Some);
            }
        }
        match &config.creds_store {
            Some(store) if !store.is_empty() => run_helper(store, &keys[0]),
            _ => Ok(None),
        }
    }

    /// What [`AuthConfig::lookup`] looks at, for "no credentials found (tried …)".
    pub fn tried(&self) -> String {
        match &self.docker_config_dir {
            Some(dir) => format!("`--username`, then `{}`", dir.join("config.json").display()),
            None => "`--username` only, no Docker config folder is known".into(),
        }
    }
}

/// The keys a registry may have in `config.json`: Docker Hub's URL key, else the host,
/// with and without a scheme.
fn config_keys(registry: &str) -> Vec<String> {
    if registry == DOCKER_HUB {
        return vec![
            DOCKER_HUB_CONFIG_KEY.into(),
            "docker.io".into(),
            "index.docker.io".into(),
        ];
    }
    vec![
        registry.to_owned(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ]
}

fn decode_auth(auth: &str, path: &Path) -> Result<Credentials> {
    let bad = |reason: &str| Error::Credentials {
        credentials: CredentialSource::DockerConfig {
            path: path.to_owned(),
        },
        reason: reason.into(),
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| bad("an `auth` value is not base64"))?;
    let text = String::from_utf8(raw).map_err(|_| bad("an `auth` value is not UTF-8"))?;
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| bad("an `auth` value is not `user:password` in base64"))?;
    Ok(Credentials {
        username: user.to_owned(),
        password: Secret::new(password),
        source: CredentialSource::DockerConfig {
            path: path.to_owned(),
        },
    })
}

/// `docker-credential-<name> get`, server URL on stdin. "Not found" answers (a non-zero exit)
/// mean no credentials for this registry.
fn run_helper(name: &str, server: &str) -> Result<Option<Credentials>> {
    let source = CredentialSource::Helper { name: name.into() };
    let failed = |reason: String| Error::Credentials {
        credentials: source.clone(),
        reason,
    };
    let program = format!("docker-credential-{name}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("cannot run `{program}` ({e}); is it on `PATH`?")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is judged by its exit status below.
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| failed(format!("`{program}` failed ({e})")))?;
    if !out.status.success() {
        // The protocol's "credentials not found in native keychain" is not an error; any
        // other failure (a locked keychain, a broken helper) is, with what the helper said.
        let said = String::from_utf8_lossy(if out.stderr.is_empty() {
            &out.stdout
        } else {
            &out.stderr
        })
        .trim()
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
        if said.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(failed(format!(
            "`{program} get` failed ({}): {said}",
            out.status
        )));
    }
    let answer: HelperAnswer = serde_json::from_slice(&out.stdout)
        .map_err(|_| failed("its answer is not the JSON `{\"Username\", \"Secret\"}`".into()))?;
    Ok(Some(Credentials {
        username: answer.username,
        password: Secret::new(answer.secret),
        source,
    }))
}

/// A `WWW-Authenticate` challenge (RFC 9110 §11.6.1): a scheme and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lowercased: `bearer` or `basic`.
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// Parse `Bearer realm="https://auth",service="registry",scope="repository:a:pull"`.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        let mut params = BTreeMap::new();
        let mut rest = rest.trim();
        while !rest.is_empty() {
            let (key, after) = rest.split_once('=')?;
            let after = after.trim_start();
            let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            } else {
                after.split_once(',').unwrap_or((after, ""))
            };
            params.insert(key.trim().to_ascii_lowercase(), value.to_owned());
            rest = remaining.trim_start().trim_start_matches(',').trim_start();
        }
        Some(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        })
    }
}

/// The token endpoint's answer (Docker token spec: `token`, or OAuth2's `access_token`).
#[derive(Deserialize)]
pub(crate) struct TokenAnswer {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let c = Credentials {
            username: "u".into(),
            password: Secret::new("hunter2"),
            source: CredentialSource::CommandLine,
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(Secret::new("hunter2").to_string(), "***");
        assert_eq!(c.basic_header(), "Basic dTpodW50ZXIy");
    }

    #[test]
    fn challenges_parse() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example/token");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        let c = Challenge::parse(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "Registry Realm");
    }

    #[test]
    fn docker_config_auths_and_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        fs_err::write(
            dir.path().join("config.json"),
            format!(r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{auth}"}},"https://index.docker.io/v1/":{{"auth":"{auth}"}}}}}}"#),
        )
        .unwrap();
        let config = AuthConfig {
            docker_config_dir: Some(dir.path().into()),
            ..AuthConfig::default()
        };
        let c = config.lookup("127.0.0.1:5000").unwrap().unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.expose()),
            ("alice", "s3cret")
        );
        assert!(matches!(c.source, CredentialSource::DockerConfig { .. }));
        assert!(config.lookup("docker.io").unwrap().is_some());
        assert!(config.lookup("other:1").unwrap().is_none());
        let explicit = AuthConfig {
            explicit: Some(("bob".into(), Secret::new("pw"))),
            ..config
        };
        let c = explicit.lookup("127.0.0.1:5000").unwrap().unwrap();
        assert_eq!(c.source, CredentialSource::CommandLine);
        // Given for one registry, the command line's password goes to that one only.
        let scoped = AuthConfig {
            explicit_registry: Some("127.0.0.1:5000".into()),
            ..explicit
        };
        let c = scoped.lookup("127.0.0.1:5000").unwrap().unwrap();
        assert_eq!(c.source, CredentialSource::CommandLine);
        let c = scoped.lookup("docker.io").unwrap().unwrap();
        assert!(matches!(c.source, CredentialSource::DockerConfig { .. }));
    }

    #[test]
    fn a_missing_helper_is_named() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(
            dir.path().join("config.json"),
            r#"{"credsStore":"nua-test-missing"}"#,
        )
        .unwrap();
        let config = AuthConfig {
            docker_config_dir: Some(dir.path().into()),
            ..AuthConfig::default()
        };
        let err = config.lookup("example.com").unwrap_err().to_string();
        assert!(err.contains("docker-credential-nua-test-missing"), "{err}");
    }
}
