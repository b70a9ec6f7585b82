//! The registry client: endpoints, the `WWW-Authenticate` challenge flow, retries.
//!
//! A request is first sent with whatever authorization is cached for its registry and scope.
//! On `401` the challenge says what to do (distribution spec, "Authentication"; Docker's
//! token-auth spec): `Basic` sends the credentials found by [`AuthConfig`]; `Bearer` asks the
//! `realm` for a token with `service` and the scopes the operation needs
//! (`repository:NAME:pull[,push]`), with Basic credentials when there are some (anonymous
//! otherwise), then sends the request again with `Authorization: Bearer TOKEN`. Tokens are
//! cached per registry and scope set. Transient failures (connection errors, 429, 5xx) are
//! retried by [`nua_oci::http::send_retrying`].
//!
//! Plain HTTP is used only for registries listed in `insecure_registries`; everything else is
//! HTTPS with the system's root certificates.

use std::collections::HashMap;
use std::sync::Mutex;

use reqwest::blocking::{RequestBuilder, Response};
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};

use super::auth::{AuthConfig, Challenge, CredentialSource, Credentials, TokenAnswer};
use super::error::{Error, Result};
use super::reference::Reference;
use nua_oci::http::{self as http, HttpError, LowSpeed, Retry};

/// How the client reaches registries.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    pub auth: AuthConfig,
    /// `HOST:PORT` of registries spoken to over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// A mirror of Docker Hub (`https://mirror.example` or `http://HOST:PORT`) used for pulls.
    pub mirror: Option<String>,
    pub retry: Retry,
    /// Requests without a body wait this long for headers, and downloads abandon a body this
    /// slow (resumed or retried).
    pub low_speed: LowSpeed,
}

/// A client for any number of registries (cheap to share between threads).
pub struct Client {
    http: reqwest::blocking::Client,
    options: ClientOptions,
    /// `Authorization` values by registry and scope set.
    authorizations: Mutex<HashMap<String, String>>,
    /// Credential lookups by registry (helpers are slow).
    credentials: Mutex<HashMap<String, Option<Credentials>>>,
}

/// One repository of a registry, with the access an operation needs.
pub struct Repo<'c> {
    client: &'c Client,
    /// The registry as named in references: in messages and for credentials.
    pub registry: String,
    pub repository: String,
    base: Url,
    /// `repository:NAME:ACTIONS`, the first one for `repository`.
    scopes: Vec<String>,
}

impl Client {
    pub fn new(options: ClientOptions) -> Result<Client> {
        Ok(Client {
            http: http::client(options.low_speed.time)
                .map_err(|e| http_error("CLIENT", e, None))?,
            options,
            authorizations: Mutex::default(),
            credentials: Mutex::default(),
        })
    }

    /// The repository of `reference` for pulling (the Docker Hub mirror applies) or pushing.
    pub fn repo(&self, reference: &Reference, push: bool) -> Result<Repo<'_>> {
        let mirror = self
            .options
            .mirror
            .as_deref()
            .filter(|_| reference.is_docker_hub() && !push);
        let base = match mirror {
            Some(url) => Url::parse(url).map_err(|e| Error::InvalidReference {
                reference: url.to_owned(),
                reason: format!("the Docker Hub mirror is not a URL ({e})"),
            })?,
            None => {
                let host = reference.api_host();
                let insecure = self.options.insecure_registries.iter().any(|h| h == host);
                let scheme = if insecure { "http" } else { "https" };
                Url::parse(&format!("{scheme}://{host}/")).map_err(|e| Error::InvalidReference {
                    reference: reference.to_string(),
                    reason: format!("`{host}` is not a usable host ({e})"),
                })?
            }
        };
        let actions = if push { "pull,push" } else { "pull" };
        Ok(Repo {
            client: self,
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            base,
            scopes: vec![format!("repository:{}:{actions}", reference.repository)],
        })
    }

    /// Whether `url`'s host is one of `--insecure-registry`.
    fn insecure(&self, url: &Url) -> bool {
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => return false,
        };
        self.options.insecure_registries.contains(&host)
    }

    fn credentials(&self, registry: &str) -> Result<Option<Credentials>> {
        let mut cache = self.credentials.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = cache.get(registry) {
            return Ok(found.clone());
        }
        let found = self.options.auth.lookup(registry)?;
        cache.insert(registry.to_owned(), found.clone());
        Ok(found)
    }
}

impl Repo<'_> {
    /// Also ask for pull access to `other` (a cross-repository mount source).
    pub fn with_pull_scope(mut self, other: &str) -> Self {
        let scope = format!("repository:{other}:pull");
        if !self.scopes.contains(&scope) {
            self.scopes.push(scope);
        }
        self
    }

    /// The retry policy of the client, for transfers that resume by themselves.
    pub fn retry_policy(&self) -> Retry {
        self.client.options.retry
    }

    /// The low-speed limit bodies are read with ([`LowSpeed::watch`]).
    pub fn low_speed(&self) -> LowSpeed {
        self.client.options.low_speed
    }

    /// `BASE/v2/<repository>/<rest>`.
    pub fn url(&self, rest: &str) -> Url {
        let path = format!("v2/{}/{rest}", self.repository);
        self.base.join(&path).expect("a path joins a base URL")
    }

    /// A `Location` header resolved against the registry; a move from HTTPS to plain HTTP
    /// is refused unless that host is listed as insecure.
    pub fn resolve(&self, location: &str) -> Result<Url> {
        let url = self
            .base
            .join(location)
            .map_err(|e| self.protocol(format!("`Location: {location}` is not a URL ({e})")))?;
        if url.scheme() == "http" && self.base.scheme() == "https" && !self.client.insecure(&url) {
            return Err(self.protocol(format!(
                "it sent the client to plain HTTP (`{url}`); list that host with \
                 `--insecure-registry` if that is intended"
            )));
        }
        Ok(url)
    }

    pub fn protocol(&self, reason: String) -> Error {
        Error::Protocol {
            registry: self.registry.clone(),
            reason,
        }
    }

    fn key(&self) -> String {
        format!("{} {}", self.base, self.scopes.join(" "))
    }

    /// Send a request, authenticating when challenged and retrying transient failures when
    /// `retry`. Any final status comes back as an answer except 401 and 403, which are
    /// errors naming the credential source, or for a 403 of the storage host a blob was
    /// redirected to, the storage URL (tried twice: a signed URL may be fetched anew).
    ///
    /// A request without a body (`GET`, `HEAD`) waits at most the low-speed time for its
    /// headers, and as long for each read of its body; others may take [`UPLOAD_TIMEOUT`]
    /// in all.
    ///
    /// [`UPLOAD_TIMEOUT`]: http::UPLOAD_TIMEOUT
    pub fn send(
        &self,
        method: Method,
        url: &Url,
        build: &dyn Fn(RequestBuilder) -> RequestBuilder,
        retry: bool,
    ) -> Result<Response> {
        let policy = if retry {
            self.client.options.retry
        } else {
            Retry {
                retries: 0,
                ..self.client.options.retry
            }
        };
        let bodiless = method == Method::GET || method == Method::HEAD;
        let mut challenged = false;
        let mut storage_retried = false;
        loop {
            let authorization = self.cached_authorization();
            // Credentials go only to the registry itself: an upload `Location` or a redirect
            // may name a storage host, which must not get them.
            let same_origin = url.origin() == self.base.origin();
            let resp = http::send_retrying(&policy, url.as_str(), || {
                let mut req = self.client.http.request(method.clone(), url.clone());
                if !bodiless {
                    req = req.timeout(http::UPLOAD_TIMEOUT);
                }
                if let Some(value) = authorization.as_ref().filter(|_| same_origin) {
                    req = req.header(AUTHORIZATION, value);
                }
                build(req).send()
            })
            .map_err(|e| http_error(method.as_str(), e, None))?;
            match resp.status() {
                StatusCode::UNAUTHORIZED if !challenged => {
                    challenged = true;
                    self.authenticate(&resp)?;
                }
                StatusCode::UNAUTHORIZED => return Err(self.refused()?),
                // Redirected to a storage host (S3, GCS, a CDN) that refused: its signed URL,
                // not our credentials. Ask the registry again once for a fresh one.
                StatusCode::FORBIDDEN if resp.url() != url => {
                    if !storage_retried {
                        storage_retried = true;
                        continue;
                    }
                    let mut storage = resp.url().clone();
                    storage.set_query(None);
                    storage.set_fragment(None);
                    let _ = storage.set_username("");
                    let _ = storage.set_password(None);
                    return Err(Error::StorageDenied {
                        registry: self.registry.clone(),
                        what: url.path().rsplit('/').next().unwrap_or_default().to_owned(),
                        url: storage.to_string(),
                    });
                }
                StatusCode::FORBIDDEN => {
                    return Err(Error::Denied {
                        registry: self.registry.clone(),
                        repository: self.repository.clone(),
                        action: if self.scopes[0].ends_with("push") {
                            "push"
                        } else {
                            "pull"
                        },
                        credentials: self.source()?,
                    })
                }
                _ => return Ok(resp),
            }
        }
    }

    /// An error for a final answer that is not what the protocol wants.
    pub fn unexpected(&self, method: &Method, url: &Url, resp: Response) -> Error {
        let status = resp.status().as_u16();
        let detail = resp.text().ok().and_then(|body| error_detail(&body));
        Error::Http {
            method: method.to_string(),
            url: url.to_string(),
            kind: http::HttpKind::Status(status),
            retries: 0,
            detail,
            source: None,
        }
    }

    fn cached_authorization(&self) -> Option<String> {
        let cache = self.client.authorizations.lock();
        let cache = cache.unwrap_or_else(|p| p.into_inner());
        cache.get(&self.key()).cloned()
    }

    fn source(&self) -> Result<CredentialSource> {
        Ok(match self.client.credentials(&self.registry)? {
            Some(c) => c.source,
            None => CredentialSource::Anonymous,
        })
    }

    /// The error for credentials that did not work, or for none at all.
    fn refused(&self) -> Result<Error> {
        Ok(match self.client.credentials(&self.registry)? {
            Some(c) => Error::Unauthorized {
                registry: self.registry.clone(),
                credentials: c.source,
            },
            None => Error::AuthRequired {
                registry: self.registry.clone(),
                tried: self.client.options.auth.tried(),
            },
        })
    }

    /// Answer the challenge of a 401 and cache the resulting `Authorization` value.
    fn authenticate(&self, resp: &Response) -> Result<()> {
        let header = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(Challenge::parse)
            .ok_or_else(|| self.protocol("401 without a usable `WWW-Authenticate`".into()))?;
        let credentials = self.client.credentials(&self.registry)?;
        let value = match header.scheme.as_str() {
            "basic" => match &credentials {
                Some(c) => c.basic_header(),
                None => return Err(self.refused()?),
            },
            "bearer" => format!("Bearer {}", self.token(&header, credentials.as_ref())?),
            other => {
                return Err(self.protocol(format!("unsupported authentication scheme `{other}`")))
            }
        };
        let mut cache = (self.client.authorizations.lock()).unwrap_or_else(|p| p.into_inner());
        cache.insert(self.key(), value);
        Ok(())
    }

    /// Ask the token service of a Bearer challenge for our scopes.
    fn token(&self, challenge: &Challenge, credentials: Option<&Credentials>) -> Result<String> {
        let realm = challenge
            .params
            .get("realm")
            .ok_or_else(|| self.protocol("a Bearer challenge without `realm`".into()))?;
        let mut url = Url::parse(realm)
            .map_err(|e| self.protocol(format!("the token realm `{realm}` is not a URL ({e})")))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = challenge.params.get("service") {
                query.append_pair("service", service);
            }
            for scope in &self.scopes {
                query.append_pair("scope", scope);
            }
        }
        // A password goes to a token service over TLS only, or over plain HTTP to a host listed
        // insecure or to the (plain HTTP) registry's own host, which sees it anyway.
        let same_plain_host = self.base.scheme() == "http" && url.host() == self.base.host();
        let credentials = credentials
            .filter(|_| url.scheme() == "https" || same_plain_host || self.client.insecure(&url));
        let resp = http::send_retrying(&self.client.options.retry, url.as_str(), || {
            let req = self.client.http.get(url.clone());
            match credentials {
                Some(c) => req.header(AUTHORIZATION, c.basic_header()),
                None => req,
            }
            .send()
        })
        .map_err(|e| http_error("GET", e, None))?;
        if matches!(resp.status().as_u16(), 401 | 403) {
            return Err(self.refused()?);
        }
        if !resp.status().is_success() {
            return Err(self.unexpected(&Method::GET, &url, resp));
        }
        let answer: TokenAnswer = resp
            .bytes()
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| {
                self.protocol(format!("the token service `{realm}` answered no JSON"))
            })?;
        answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.protocol(format!("the token service `{realm}` gave no token")))
    }
}

/// `{"errors":[{"code":"…","message":"…"}]}` of the distribution spec, as one line.
fn error_detail(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let errors = value.get("errors")?.as_array()?;
    let parts: Vec<String> = errors
        .iter()
        .map(|e| {
            let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
            let message = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
            format!("{code} {message}").trim().to_owned()
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

pub(crate) fn http_error(method: &str, e: HttpError, detail: Option<String>) -> Error {
    Error::Http {
        method: method.to_owned(),
        url: e.url,
        kind: e.kind,
        retries: e.retries,
        detail,
        source: e.source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_insecure_registries_and_the_mirror() {
        let client = Client::new(ClientOptions {
            insecure_registries: vec!["127.0.0.1:5000".into()],
            mirror: Some("http://127.0.0.1:6000".into()),
            ..ClientOptions::default()
        })
        .unwrap();
        let local = Reference::parse("127.0.0.1:5000/ns/app:1").unwrap();
        let repo = client.repo(&local, true).unwrap();
        assert_eq!(
            repo.url("manifests/1").as_str(),
            "http://127.0.0.1:5000/v2/ns/app/manifests/1"
        );
        assert_eq!(repo.scopes, ["repository:ns/app:pull,push"]);
        let hub = Reference::parse("debian").unwrap();
        let pull = client.repo(&hub, false).unwrap();
        assert_eq!(
            pull.url("tags/list").as_str(),
            "http://127.0.0.1:6000/v2/library/debian/tags/list"
        );
        let push = client.repo(&hub, true).unwrap();
        assert!(push
            .url("x")
            .as_str()
            .starts_with("https://registry-1.docker.io/"));
        let other = Reference::parse("example.com:5000/a").unwrap();
        assert!(client
            .repo(&other, false)
            .unwrap()
            .url("x")
            .as_str()
            .starts_with("https://"));
    }

    #[test]
    fn registry_error_bodies_become_one_line() {
        let body =
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(
            error_detail(body).as_deref(),
            Some("MANIFEST_UNKNOWN manifest unknown")
        );
        assert_eq!(error_detail("<html>"), None);
    }
}
