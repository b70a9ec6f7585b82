//! Where packages come from: a mirror, the suites resolved over (by default `SUITE`,
//! `SUITE-updates` and `SUITE-security`, as Debian's own apt sources name them), components,
//! an architecture and the keyring that signs it, by default read from the machine's apt
//! sources (deb822 `.sources` files of sources.list(5) and the one-line `sources.list`).
//!
//! Security updates live in another archive on the same host (`debian-security`, its pool
//! under `pool/updates/`): a package's URL depends on the suite it comes from.

use std::path::{Path, PathBuf};

use super::deb822;
use super::error::{Error, IoContext, Result};

/// Debian's redirector, used when the host has no apt source.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// Debian's archive keyring, used when the apt source names none.
pub const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// Debian's security archive on the redirector, written into images.
pub const DEFAULT_SECURITY_MIRROR: &str = "http://deb.debian.org/debian-security";
const SNAPSHOT_BASE: &str = "http://snapshot.debian.org/archive";

/// A Debian repository to bootstrap from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Base URL, without a trailing `/` (`http://deb.debian.org/debian`).
    pub mirror: String,
    /// Base URL of the archive of the `*-security` suites
    /// (`http://deb.debian.org/debian-security`).
    pub security_mirror: String,
    /// The release (`bookworm`): what a lock and the image's distribution are named after.
    pub suite: String,
    /// The suites resolved over, in order (the highest version wins; a tie goes to the
    /// later suite): by default [`default_suites`] of `suite`.
    pub suites: Vec<String>,
    pub components: Vec<String>,
    /// Debian architecture name (`amd64`).
    pub arch: String,
    pub keyring: PathBuf,
    /// A snapshot.debian.org timestamp (`20240101T000000Z`); when set, `mirror` points at
    /// that snapshot and `Valid-Until` is not enforced (old snapshots are expired by design).
    pub snapshot: Option<String>,
}

impl Source {
    /// The host's Debian mirror (first `deb` source whose URI ends in `/debian`, and the
    /// first ending in `/debian-security` for security updates, else the same host's) for
    /// `suite` and its [`default_suites`].
    pub fn from_host(suite: &str) -> Result<Source> {
        Source::from_apt_dir(Path::new("/etc/apt"), suite)
    }

    /// [`Source::from_host`] reading the apt configuration under `etc_apt` (for tests).
    pub fn from_apt_dir(etc_apt: &Path, suite: &str) -> Result<Source> {
        let mut entries = Vec::new();
        let list = etc_apt.join("sources.list");
        if list.is_file() {
            entries.extend(one_line_entries(&list)?);
        }
        let dir = etc_apt.join("sources.list.d");
        if dir.is_dir() {
            let mut files: Vec<PathBuf> = fs_err::read_dir(&dir)
                .at(&dir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            files.sort();
            for file in files {
                match file.extension().and_then(|e| e.to_str()) {
                    Some("sources") => entries.extend(deb822_entries(&file)?),
                    Some("list") => entries.extend(one_line_entries(&file)?),
                    _ => {}
                }
            }
        }
        let security = entries
            .iter()
            .map(|(uri, _, _)| uri.trim_end_matches('/'))
            .find(|uri| uri.ends_with("/debian-security"))
            .map(str::to_owned);
        let found = entries
            .into_iter()
            .find(|(uri, _, _)| uri.trim_end_matches('/').ends_with("/debian"));
        let (mirror, components, keyring) =
            found.unwrap_or_else(|| (DEFAULT_MIRROR.to_owned(), vec!["main".to_owned()], None));
        let mirror = mirror.trim_end_matches('/').to_owned();
        Ok(Source {
            security_mirror: security.unwrap_or_else(|| security_archive_of(&mirror)),
            mirror,
            suite: suite.to_owned(),
            suites: default_suites(suite),
            components,
            arch: host_arch().to_owned(),
            keyring: keyring.unwrap_or_else(|| PathBuf::from(DEFAULT_KEYRING)),
            snapshot: None,
        })
    }

    /// The same source pinned to a snapshot.debian.org timestamp (both archives).
    pub fn at_snapshot(mut self, timestamp: &str) -> Source {
        self.mirror = format!("{SNAPSHOT_BASE}/debian/{timestamp}");
        self.security_mirror = format!("{SNAPSHOT_BASE}/debian-security/{timestamp}");
        self.snapshot = Some(timestamp.to_owned());
        self
    }

    /// The same source on another mirror (`--mirror`): its security archive is the
    /// `debian-security` beside it on the same host.
    pub fn with_mirror(mut self, mirror: &str) -> Source {
        self.mirror = mirror.trim_end_matches('/').to_owned();
        self.security_mirror = security_archive_of(&self.mirror);
        self
    }

    /// Base URL of the archive that holds `suite`.
    pub fn archive(&self, suite: &str) -> &str {
        if is_security(suite) {
            &self.security_mirror
        } else {
            &self.mirror
        }
    }

    /// URL of a file under `dists/<suite>/`.
    pub fn dists_url(&self, suite: &str, path: &str) -> String {
        format!("{}/dists/{suite}/{path}", self.archive(suite))
    }

    /// URL of a pool file (`Filename:` of the index of `suite`).
    pub fn pool_url(&self, suite: &str, filename: &str) -> String {
        format!("{}/{filename}", self.archive(suite))
    }

    /// The deb822 apt source written into a bootstrapped image: Debian's own redirector (or
    /// the pinned snapshot), never the mirror this machine happened to fetch from, so the
    /// image is the same wherever it is built. One stanza per archive, naming the suites
    /// the image was resolved over, so `apt-get upgrade` inside sees the same updates.
    pub fn apt_sources(&self) -> String {
        let (main, security) = match self.snapshot {
            Some(_) => (self.mirror.as_str(), self.security_mirror.as_str()),
            None => (DEFAULT_MIRROR, DEFAULT_SECURITY_MIRROR),
        };
        let mut out = String::new();
        for (uri, security_suites) in [(main, false), (security, true)] {
            let suites: Vec<&str> = self
                .suites
                .iter()
                .filter(|s| is_security(s) == security_suites)
                .map(String::as_str)
                .collect();
            if suites.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!(
                "Types: deb\nURIs: {uri}\nSuites: {}\nComponents: {}\nSigned-By: {}\n",
                suites.join(" "),
                self.components.join(" "),
                DEFAULT_KEYRING
            ));
            if self.snapshot.is_some() {
                out.push_str("Check-Valid-Until: no\n");
            }
        }
        out
    }
}

/// The suites a bootstrap of `suite` resolves over when its definition lists none: the
/// release, its stable updates and its security updates, as Debian's apt sources name them.
/// `sid`/`unstable` and `experimental` have neither updates nor security suites.
pub fn default_suites(suite: &str) -> Vec<String> {
    if matches!(suite, "sid" | "unstable" | "experimental" | "rc-buggy") {
        return vec![suite.to_owned()];
    }
    vec![
        suite.to_owned(),
        format!("{suite}-updates"),
        format!("{suite}-security"),
    ]
}

/// Whether `suite` lives in the security archive (`bookworm-security`).
pub fn is_security(suite: &str) -> bool {
    suite.ends_with("-security")
}

/// The security archive beside a mirror: `…/debian` → `…/debian-security`.
fn security_archive_of(mirror: &str) -> String {
    let mirror = mirror.trim_end_matches('/');
    match mirror.strip_suffix("/debian") {
        Some(host) => format!("{host}/debian-security"),
        None => format!("{mirror}-security"),
    }
}

/// Debian's name for the architecture this program was built for.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "i386",
        "arm" => "armhf",
        "powerpc64" => "ppc64el",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

type Entry = (String, Vec<String>, Option<PathBuf>);

/// `deb` entries of a deb822 `.sources` file: (first URI, components, Signed-By path).
fn deb822_entries(path: &Path) -> Result<Vec<Entry>> {
    let text = fs_err::read_to_string(path).at(path)?;
    let paras = deb822::parse(&text, &path.display().to_string())?;
    let mut out = Vec::new();
    for p in paras {
        let types = p.get("Types").unwrap_or("");
        let enabled = p.get("Enabled").is_none_or(|e| e != "no");
        if !enabled || !types.split_whitespace().any(|t| t == "deb") {
            continue;
        }
        let Some(uri) = p.get("URIs").and_then(|u| u.split_whitespace().next()) else {
            return Err(Error::Sources {
                path: path.to_owned(),
                reason: "a `deb` entry without `URIs`".to_owned(),
            });
        };
        let components = words(p.get("Components").unwrap_or("main"));
        // Signed-By is a path or an embedded key; only a path is usable here.
        let keyring = p
            .get("Signed-By")
            .map(str::trim)
            .filter(|k| k.starts_with('/') && !k.contains('\n'))
            .map(PathBuf::from);
        out.push((uri.to_owned(), components, keyring));
    }
    Ok(out)
}

/// `deb [options] uri suite component...` lines of a one-line sources file.
fn one_line_entries(path: &Path) -> Result<Vec<Entry>> {
    let text = fs_err::read_to_string(path).at(path)?;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("deb ") else {
            continue;
        };
        let (options, rest) = match rest.trim().strip_prefix('[') {
            Some(r) => r.split_once(']').ok_or_else(|| Error::Sources {
                path: path.to_owned(),
                reason: format!("`[` without `]` in `{line}`"),
            })?,
            None => ("", rest),
        };
        let fields = words(rest);
        if fields.len() < 2 {
            continue;
        }
        let keyring = options
            .split_whitespace()
            .find_map(|o| o.strip_prefix("signed-by="))
            .map(PathBuf::from);
        out.push((fields[0].clone(), fields[2..].to_vec(), keyring));
    }
    Ok(out)
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_source_with_signed_by() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("sources.list.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(
            d.join("debian.sources"),
            "Types: deb\n# comment\nURIs: http://mirror.example/debian/\nSuites: bookworm\n\
             Components: main contrib\nSigned-By: /k.gpg\n\n\
             Types: deb\nURIs: http://mirror.example/debian-security\nSuites: x\n",
        )
        .unwrap();
        let s = Source::from_apt_dir(dir.path(), "trixie").unwrap();
        assert_eq!(s.mirror, "http://mirror.example/debian");
        assert_eq!(s.components, ["main", "contrib"]);
        assert_eq!(s.keyring, PathBuf::from("/k.gpg"));
        assert_eq!(s.suite, "trixie");
        assert_eq!(s.suites, ["trixie", "trixie-updates", "trixie-security"]);
        assert_eq!(s.security_mirror, "http://mirror.example/debian-security");
    }

    #[test]
    fn a_security_package_comes_from_the_security_archive() {
        let dir = tempfile::tempdir().unwrap();
        let s = Source::from_apt_dir(dir.path(), "bookworm").unwrap();
        let file = "pool/updates/main/o/openssl/libssl3_3.0.22-1~deb12u2_amd64.deb";
        assert_eq!(
            s.pool_url("bookworm-security", file),
            format!("http://deb.debian.org/debian-security/{file}")
        );
        assert_eq!(
            s.pool_url("bookworm-updates", "pool/main/t/tzdata/t.deb"),
            "http://deb.debian.org/debian/pool/main/t/tzdata/t.deb"
        );
        assert_eq!(
            s.dists_url("bookworm-security", "InRelease"),
            "http://deb.debian.org/debian-security/dists/bookworm-security/InRelease"
        );
        // Another mirror (`--mirror`) brings its own security archive on the same host.
        let m = s.clone().with_mirror("http://m.example/debian/");
        assert_eq!(
            m.pool_url("bookworm-security", "f.deb"),
            "http://m.example/debian-security/f.deb"
        );
        let snap = s.at_snapshot("20240101T000000Z");
        assert_eq!(
            snap.pool_url("bookworm-security", "f.deb"),
            "http://snapshot.debian.org/archive/debian-security/20240101T000000Z/f.deb"
        );
        assert_eq!(default_suites("sid"), ["sid"]);
    }

    #[test]
    fn image_apt_sources_name_the_three_suites() {
        let dir = tempfile::tempdir().unwrap();
        let s = Source::from_apt_dir(dir.path(), "bookworm").unwrap();
        assert_eq!(
            s.apt_sources(),
            "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n\
             Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
             Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n\
             Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        );
        let snap = s.at_snapshot("20240101T000000Z").apt_sources();
        assert!(
            snap.contains(
                "URIs: http://snapshot.debian.org/archive/debian-security/20240101T000000Z\n"
            ) && snap.matches("Check-Valid-Until: no\n").count() == 2,
            "{snap}"
        );
    }

    #[test]
    fn one_line_source_and_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let s = Source::from_apt_dir(dir.path(), "bookworm").unwrap();
        assert_eq!(s.mirror, DEFAULT_MIRROR);
        assert_eq!(s.keyring, PathBuf::from(DEFAULT_KEYRING));
        std::fs::write(
            dir.path().join("sources.list"),
            "# x\ndeb-src http://a/debian bookworm main\n\
             deb [arch=amd64 signed-by=/s.gpg] http://m/debian bookworm main non-free\n",
        )
        .unwrap();
        let s = Source::from_apt_dir(dir.path(), "bookworm").unwrap();
        assert_eq!(s.mirror, "http://m/debian");
        assert_eq!(s.components, ["main", "non-free"]);
        assert_eq!(s.keyring, PathBuf::from("/s.gpg"));
        let snap = s.at_snapshot("20240101T000000Z");
        assert_eq!(
            snap.dists_url("bookworm", "InRelease"),
            "http://snapshot.debian.org/archive/debian/20240101T000000Z/dists/bookworm/InRelease"
        );
    }
}
