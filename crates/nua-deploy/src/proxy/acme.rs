//! Certificates from an ACME CA (RFC 8555), with instant-acme. The HTTP-01 challenge is
//! answered by the nginx already serving the site (its challenge folder is a location of
//! every HTTP server), so issuing never stops a site.
//!
//! ```text
//! <dir>/account.json              the account's credentials (its key), 0600
//! <dir>/<host>/fullchain.pem      the certificate and its chain
//! <dir>/<host>/key.pem            its private key, 0600
//! <dir>/<host>/attempt.json       the last order: when, and the CA's problem if it failed
//! ```

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use serde::{Deserialize, Serialize};

use super::Tls;

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Where to ask and where to keep.
#[derive(Debug, Clone)]
pub struct Acme {
    /// The CA's directory URL.
    pub directory: String,
    /// A contact for the account (`mailto:` is added).
    pub email: Option<String>,
    /// A PEM root to trust for the CA's own HTTPS (a test CA); else the system's roots.
    pub ca_bundle: Option<PathBuf>,
    /// Where certificates and the account live (under the state folder).
    pub dir: PathBuf,
    /// The folder nginx serves `/.well-known/acme-challenge/` from (its root).
    pub challenges: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the ACME CA `{directory}` refused or failed: {message}")]
    Ca { directory: String, message: String },
    #[error("cannot write `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The last order of a host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Attempt {
    /// Seconds since the epoch.
    pub at: u64,
    /// The CA's problem, or what failed; `None` when a certificate came.
    pub error: Option<String>,
    /// Failures in a row.
    pub failures: u32,
}

/// An error and its causes, on one line.
fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = source.and_then(std::error::Error::source);
    }
    text
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Write `bytes` to `path` through a temporary file and a rename, with `mode`.
fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// What a certificate says of itself.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Facts {
    /// The issuer's common name (or its whole name).
    pub issuer: String,
    /// Seconds since the epoch.
    pub not_before: i64,
    pub not_after: i64,
}

impl Facts {
    /// When to renew: two thirds into its lifetime.
    pub fn renew_at(&self) -> i64 {
        self.not_before + (self.not_after - self.not_before) * 2 / 3
    }
}

/// The facts of the first certificate of a PEM chain.
pub fn facts(chain_pem: &[u8]) -> Option<Facts> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(chain_pem).ok()?;
    let certificate = pem.parse_x509().ok()?;
    let issuer = certificate
        .issuer()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok().map(str::to_owned))
        .unwrap_or_else(|| certificate.issuer().to_string());
    let validity = certificate.validity();
    Some(Facts {
        issuer,
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
    })
}

impl Acme {
    /// The facts of the certificate of `host`, when there is one.
    pub fn facts(&self, host: &str) -> Option<Facts> {
        let tls = self.certificate(host)?;
        facts(&std::fs::read(tls.certificate).ok()?)
    }

    /// Whether `host` needs a certificate ordered: it has none, or its own is two thirds
    /// through its lifetime (or cannot be read).
    pub fn wanted(&self, host: &str) -> bool {
        match self.certificate(host) {
            None => true,
            Some(_) => self
                .facts(host)
                .is_none_or(|f| now() as i64 >= f.renew_at()),
        }
    }

    /// The certificate of `host`, when one was issued.
    pub fn certificate(&self, host: &str) -> Option<Tls> {
        let dir = self.dir.join(host);
        let certificate = dir.join("fullchain.pem");
        let key = dir.join("key.pem");
        let modified = std::fs::metadata(&certificate).ok()?.modified().ok()?;
        let version = modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            .to_string();
        key.is_file().then_some(Tls {
            certificate,
            key,
            version,
        })
    }

    /// The last order of `host`, if any.
    pub fn attempt(&self, host: &str) -> Option<Attempt> {
        let text = std::fs::read_to_string(self.dir.join(host).join("attempt.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Whether a failed host may be asked for again: after 1, 2, 4 … minutes, at most a day.
    pub fn due(&self, host: &str) -> bool {
        match self.attempt(host) {
            Some(Attempt {
                at,
                error: Some(_),
                failures,
            }) => {
                let wait = 60u64.saturating_mul(1 << failures.min(10).saturating_sub(1));
                now() >= at.saturating_add(wait.min(86_400))
            }
            _ => true,
        }
    }

    /// Order a certificate for `host` and keep it; the outcome is recorded either way.
    pub fn issue(&self, host: &str) -> Result<Tls, Error> {
        let dir = self.dir.join(host);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io(&dir))?;
        let outcome = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(120), self.order(host))
                .await
                .unwrap_or_else(|_| Err("no answer from the CA in 120 s".to_owned()))
        });
        let failures = match (&outcome, self.attempt(host)) {
            (Ok(_), _) => 0,
            (Err(_), Some(last)) => last.failures + 1,
            (Err(_), None) => 1,
        };
        let attempt = Attempt {
            at: now(),
            error: outcome
                .as_ref()
                .err()
                .map(|e| format!("{}: {e}", self.directory)),
            failures,
        };
        let record = serde_json::to_vec_pretty(&attempt).unwrap_or_default();
        write(&dir.join("attempt.json"), &record, 0o644)?;
        let (chain, key) = outcome.map_err(|message| Error::Ca {
            directory: self.directory.clone(),
            message,
        })?;
        // The key first: a certificate is only ever found beside its own key.
        write(&dir.join("key.pem"), key.as_bytes(), 0o600)?;
        write(&dir.join("fullchain.pem"), chain.as_bytes(), 0o644)?;
        self.certificate(host).ok_or_else(|| Error::Io {
            path: dir.join("fullchain.pem"),
            source: std::io::Error::other("the certificate just written is gone"),
        })
    }

    /// The account: the one kept, or a new one (kept 0600).
    async fn account(&self) -> Result<Account, String> {
        let builder = match &self.ca_bundle {
            Some(root) => Account::builder_with_root(root),
            None => Account::builder(),
        }
        .map_err(|e| describe(&e))?;
        let path = self.dir.join("account.json");
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(credentials) = serde_json::from_str::<AccountCredentials>(&text) {
                return builder
                    .from_credentials(credentials)
                    .await
                    .map_err(|e| describe(&e));
            }
        }
        let contact = self.email.as_ref().map(|e| format!("mailto:{e}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = builder
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.directory.clone(),
                None,
            )
            .await
            .map_err(|e| describe(&e))?;
        let text = serde_json::to_vec(&credentials).map_err(|e| describe(&e))?;
        write(&path, &text, 0o600).map_err(|e| describe(&e))?;
        Ok(account)
    }

    /// One order, to its certificate chain and key (PEM); the error is the CA's problem.
    async fn order(&self, host: &str) -> Result<(String, String), String> {
        let account = self.account().await?;
        let identifiers = [Identifier::Dns(host.to_owned())];
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|e| describe(&e))?;
        let folder = self.challenges.join(".well-known/acme-challenge");
        std::fs::create_dir_all(&folder).map_err(|e| describe(&e))?;
        let mut written = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(|e| describe(&e))?;
            if authorization.status == AuthorizationStatus::Valid {
                continue;
            }
            let mut challenge = authorization
                .challenge(ChallengeType::Http01)
                .ok_or_else(|| format!("the CA offers no HTTP-01 challenge for `{host}`"))?;
            let token = challenge.token.clone();
            if token.is_empty()
                || !token
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!(
                    "the CA sent the token `{token}`, which is not base64url"
                ));
            }
            let path = folder.join(&token);
            let key_authorization = challenge.key_authorization();
            write(&path, key_authorization.as_str().as_bytes(), 0o644).map_err(|e| describe(&e))?;
            written.push(path);
            challenge.set_ready().await.map_err(|e| describe(&e))?;
        }
        let retries = RetryPolicy::new().timeout(Duration::from_secs(90));
        let status = order.poll_ready(&retries).await.map_err(|e| describe(&e));
        for path in &written {
            let _ = std::fs::remove_file(path);
        }
        let status = status?;
        if status != OrderStatus::Ready {
            // The CA's reason is in the failed challenge, or else in the order.
            let mut problems = Vec::new();
            let mut authorizations = order.authorizations();
            while let Some(Ok(mut authorization)) = authorizations.next().await {
                if let Ok(state) = authorization.refresh().await {
                    problems.extend(
                        state
                            .challenges
                            .iter()
                            .filter_map(|c| c.error.as_ref().map(ToString::to_string)),
                    );
                }
            }
            if let Some(problem) = order.state().error.as_ref() {
                problems.push(problem.to_string());
            }
            if problems.is_empty() {
                problems.push(format!("the order is {status:?}"));
            }
            return Err(problems.join("; "));
        }
        let key = order.finalize().await.map_err(|e| describe(&e))?;
        let chain = order
            .poll_certificate(&retries)
            .await
            .map_err(|e| describe(&e))?;
        Ok((chain, key))
    }
}
