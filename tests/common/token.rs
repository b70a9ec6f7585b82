//! The token service of the token-auth registry set-up: Docker's token authentication
//! (`GET /token?service=…&scope=…`, <https://distribution.github.io/distribution/spec/auth/token/>),
//! answering JWTs the reference registry accepts.
//!
//! Tokens are signed RS256 by `openssl dgst` with a key made at start; their header carries
//! the self-signed certificate in `x5c`, and that same certificate is the registry's
//! `rootcertbundle`. Valid Basic credentials get every action they ask for; a request without
//! credentials gets a token granting nothing (as Docker Hub does for a private repository);
//! wrong credentials get 401. The OAuth2 `POST /token` with `grant_type=password` is answered
//! the same way. No refresh tokens.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::http::{Acceptor, Head};

/// The `service` (token audience) the registry is configured with.
pub const SERVICE: &str = "nua-test-registry";
/// The token issuer the registry trusts.
pub const ISSUER: &str = "nua-test-token-issuer";

/// Which credentials a token request presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    Anonymous,
    Valid,
    Invalid,
}

/// One request the token service answered, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub credentials: Presented,
    /// The `scope` parameters, decoded (`repository:NAME:pull,push`).
    pub scopes: Vec<String>,
    pub status: u16,
}

/// What a connection thread needs to sign tokens.
struct Signer {
    key: PathBuf,
    /// The certificate in DER, base64 (standard alphabet, as `x5c` wants).
    x5c: String,
    /// `Basic …` value of the only valid credentials.
    authorization: String,
    user: String,
    jti: AtomicU64,
    seen: Mutex<Vec<TokenRequest>>,
}

/// A token service on 127.0.0.1, stopped on Drop.
pub struct TokenService {
    signer: Arc<Signer>,
    acceptor: Acceptor,
}

impl TokenService {
    /// Make a key and certificate in `dir` (`token.key`, `token.crt`) and listen on a free
    /// port. Returns the service and the path of the certificate for `rootcertbundle`.
    pub fn start(dir: &Path, user: &str, password: &str) -> (TokenService, PathBuf) {
        let (key, cert) = (dir.join("token.key"), dir.join("token.crt"));
        super::run_ok(
            Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args(["-subj", &format!("/CN={ISSUER}"), "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&cert),
        );
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .expect("run openssl x509");
        assert!(der.status.success(), "openssl x509 -outform DER failed");
        let signer = Arc::new(Signer {
            key,
            x5c: base64(&der.stdout, STANDARD),
            authorization: format!(
                "Basic {}",
                base64(format!("{user}:{password}").as_bytes(), STANDARD)
            ),
            user: user.to_owned(),
            jti: AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let signer = signer.clone();
            Acceptor::start(move |conn| serve(&signer, conn))
        };
        let service = TokenService { signer, acceptor };
        (service, cert)
    }

    /// The `realm` to configure in the registry.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.acceptor.addr())
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        self.signer
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Answer the requests of one (possibly kept-alive) connection.
fn serve(signer: &Signer, conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut input = BufReader::new(conn);
    while let Ok(Some(req)) = Head::read(&mut input) {
        let (method, target) = req.method_and_target();
        let length: usize = req
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length.min(64 * 1024)];
        if input.read_exact(&mut body).is_err() {
            return;
        }
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let (status, json) = if path != "/token" || !matches!(method.as_str(), "GET" | "POST") {
            (404, r#"{"details":"not found"}"#.to_owned())
        } else {
            let mut params = form_decode(query);
            params.extend(form_decode(&String::from_utf8_lossy(&body)));
            signer.answer(&req, &params)
        };
        let reason = match status {
            200 => "OK",
            401 => "Unauthorized",
            _ => "Not Found",
        };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            json.len()
        );
        if out.write_all(head.as_bytes()).is_err() || out.write_all(json.as_bytes()).is_err() {
            return;
        }
    }
}

impl Signer {
    /// Status and JSON body for a token request with these parameters.
    fn answer(&self, req: &Head, params: &[(String, String)]) -> (u16, String) {
        fn values<'a>(
            params: &'a [(String, String)],
            name: &'a str,
        ) -> impl Iterator<Item = &'a str> {
            params
                .iter()
                .filter(move |(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }
        let param = |name| values(params, name);
        let credentials = match (req.get("authorization"), param("password").next()) {
            (Some(auth), _) if auth == self.authorization => Presented::Valid,
            (None, Some(pass)) if self.authorization == basic(param("username"), pass) => {
                Presented::Valid
            }
            (None, None) => Presented::Anonymous,
            _ => Presented::Invalid,
        };
        let scopes: Vec<String> = param("scope")
            .flat_map(|s| s.split(' '))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let (status, json) = match credentials {
            Presented::Invalid => (
                401,
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"wrong user name or password"}]}"#
                    .to_owned(),
            ),
            _ => {
                let granted = credentials == Presented::Valid;
                let token = self.token(&scopes, granted);
                (
                    200,
                    format!(r#"{{"token":"{token}","access_token":"{token}","expires_in":300}}"#),
                )
            }
        };
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(TokenRequest {
                credentials,
                scopes,
                status,
            });
        (status, json)
    }

    /// A JWT granting the actions of `scopes` when `granted`, nothing otherwise.
    fn token(&self, scopes: &[String], granted: bool) -> String {
        let access: Vec<serde_json::Value> = scopes
            .iter()
            .filter(|_| granted)
            .filter_map(|scope| {
                // `TYPE:NAME:ACTIONS`; a name may hold a `:` only as a registry port, which
                // scopes do not carry, but split from both ends anyway.
                let (kind, rest) = scope.split_once(':')?;
                let (name, actions) = rest.rsplit_once(':')?;
                Some(serde_json::json!({
                    "type": kind,
                    "name": name,
                    "actions": actions.split(',').collect::<Vec<_>>(),
                }))
            })
            .collect();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = serde_json::json!({ "typ": "JWT", "alg": "RS256", "x5c": [self.x5c] });
        let claims = serde_json::json!({
            "iss": ISSUER,
            "sub": if granted { self.user.as_str() } else { "" },
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": format!("nua-test-{}", self.jti.fetch_add(1, Ordering::SeqCst)),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            base64(header.to_string().as_bytes(), URL_SAFE),
            base64(claims.to_string().as_bytes(), URL_SAFE)
        );
        let signature = sign(&self.key, signing_input.as_bytes());
        format!("{signing_input}.{}", base64(&signature, URL_SAFE))
    }
}

/// RSASSA-PKCS1-v1_5 with SHA-256 (JWS `RS256`): what `openssl dgst -sign` writes.
fn sign(key: &Path, data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run openssl dgst");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl dgst -sign failed");
    out.stdout
}

fn basic<'a>(mut user: impl Iterator<Item = &'a str>, password: &str) -> String {
    let user = user.next().unwrap_or_default();
    format!(
        "Basic {}",
        base64(format!("{user}:{password}").as_bytes(), STANDARD)
    )
}

/// `application/x-www-form-urlencoded` pairs (query strings and OAuth2 form bodies).
fn form_decode(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64 of `data`: padded with the standard alphabet, unpadded with the URL-safe one (as
/// JWS wants).
fn base64(data: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..=chunk.len() {
            out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    if alphabet == STANDARD {
        while out.len() % 4 != 0 {
            out.push('=');
        }
    }
    out
}
