//! Where packages come from: a mirror, a suite, components, an architecture and the keyring
//! that signs it, by default read from the machine's apt sources (deb822 `.sources` files of
//! sources.list(5) and the one-line `sources.list`).

use std::path::{Path, PathBuf};

use super::deb822;
use super::error::{Error, IoContext, Result};

/// Debian's redirector, used when the host has no apt source.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// Debian's archive keyring, used when the apt source names none.
pub const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
const SNAPSHOT_BASE: &str = "http://snapshot.debian.org/archive/debian";

/// A Debian repository to bootstrap from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Base URL, without a trailing `/` (`http://deb.debian.org/debian`).
    pub mirror: String,
    pub suite: String,
    pub components: Vec<String>,
    /// Debian architecture name (`amd64`).
    pub arch: String,
    pub keyring: PathBuf,
    /// A snapshot.debian.org timestamp (`20240101T000000Z`); when set, `mirror` points at
    /// that snapshot and `Valid-Until` is not enforced (old snapshots are expired by design).
    pub snapshot: Option<String>,
}

impl Source {
    /// The host's Debian mirror (first `deb` source whose URI ends in `/debian`) for `suite`.
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
        let found = entries
            .into_iter()
            .find(|(uri, _, _)| uri.trim_end_matches('/').ends_with("/debian"));
        let (mirror, components, keyring) =
            found.unwrap_or_else(|| (DEFAULT_MIRROR.to_owned(), vec!["main".to_owned()], None));
        Ok(Source {
            mirror: mirror.trim_end_matches('/').to_owned(),
            suite: suite.to_owned(),
            components,
            arch: host_arch().to_owned(),
            keyring: keyring.unwrap_or_else(|| PathBuf::from(DEFAULT_KEYRING)),
            snapshot: None,
        })
    }

    /// The same source pinned to a snapshot.debian.org timestamp.
    pub fn at_snapshot(mut self, timestamp: &str) -> Source {
        self.mirror = format!("{SNAPSHOT_BASE}/{timestamp}");
        self.snapshot = Some(timestamp.to_owned());
        self
    }

    /// URL of a file under `dists/<suite>/`.
    pub fn dists_url(&self, path: &str) -> String {
        format!("{}/dists/{}/{}", self.mirror, self.suite, path)
    }

    /// URL of a pool file (`Filename:` of the index).
    pub fn pool_url(&self, filename: &str) -> String {
        format!("{}/{}", self.mirror, filename)
    }

    /// The deb822 apt source written into a bootstrapped image: Debian's own redirector (or
    /// the pinned snapshot), never the mirror this machine happened to fetch from, so the
    /// image is the same wherever it is built.
    pub fn apt_sources(&self) -> String {
        let uri = match self.snapshot {
            Some(_) => self.mirror.as_str(),
            None => DEFAULT_MIRROR,
        };
        let mut out = format!(
            "Types: deb\nURIs: {}\nSuites: {}\nComponents: {}\nSigned-By: {}\n",
            uri,
            self.suite,
            self.components.join(" "),
            DEFAULT_KEYRING
        );
        if self.snapshot.is_some() {
            out.push_str("Check-Valid-Until: no\n");
        }
        out
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
        assert!(s.apt_sources().contains("Suites: trixie\n"));
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
            snap.dists_url("InRelease"),
            "http://snapshot.debian.org/archive/debian/20240101T000000Z/dists/bookworm/InRelease"
        );
    }
}
