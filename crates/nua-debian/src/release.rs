//! The `Release` data of a suite (the signed text of `InRelease`), as the Debian repository
//! format describes it: the index files with their SHA256 and size, and `Valid-Until`.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use super::deb822;
use super::error::{Error, Result};

/// What InRelease says about one index file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub sha256: String,
    pub size: u64,
}

/// The parts of a Release file used here.
#[derive(Debug, Clone)]
pub struct Release {
    pub suite: String,
    pub date: Option<String>,
    pub valid_until: Option<String>,
    pub acquire_by_hash: bool,
    /// Index files by path relative to `dists/<suite>/`.
    pub files: BTreeMap<String, FileEntry>,
}

impl Release {
    /// Parse the signed text of an InRelease.
    pub fn parse(text: &str, suite: &str) -> Result<Release> {
        let file = format!("dists/{suite}/InRelease");
        let paras = deb822::parse(text, &file)?;
        let para = paras.first().ok_or_else(|| Error::Release {
            suite: suite.to_owned(),
            reason: "it is empty".to_owned(),
        })?;
        // A validly signed Release of another suite (or an old one replayed under this
        // name) must not stand in for the one asked for.
        let (named, codename) = (para.get("Suite"), para.get("Codename"));
        if named != Some(suite) && codename != Some(suite) {
            return Err(Error::Release {
                suite: suite.to_owned(),
                reason: format!(
                    "it describes suite `{}` (codename `{}`)",
                    named.unwrap_or("?"),
                    codename.unwrap_or("?")
                ),
            });
        }
        let sums = para.get("SHA256").ok_or_else(|| Error::Release {
            suite: suite.to_owned(),
            reason: "it has no `SHA256` field".to_owned(),
        })?;
        let mut files = BTreeMap::new();
        for line in sums.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let entry = match parts[..] {
                [sha, size, path] if sha.len() == 64 => size.parse().ok().map(|size| {
                    let e = FileEntry {
                        sha256: sha.to_ascii_lowercase(),
                        size,
                    };
                    (path.to_owned(), e)
                }),
                _ => None,
            };
            let (path, e) = entry.ok_or_else(|| Error::Release {
                suite: suite.to_owned(),
                reason: format!("malformed `SHA256` line `{line}`"),
            })?;
            files.insert(path, e);
        }
        Ok(Release {
            suite: suite.to_owned(),
            date: para.get("Date").map(str::to_owned),
            valid_until: para.get("Valid-Until").map(str::to_owned),
            acquire_by_hash: para.get("Acquire-By-Hash") == Some("yes"),
            files,
        })
    }

    /// Refuse an expired Release (a stale or replayed mirror); `now` in Unix seconds.
    pub fn check_valid_until(&self, now: u64) -> Result<()> {
        let Some(until) = &self.valid_until else {
            return Ok(());
        };
        let expires = parse_date(until).ok_or_else(|| Error::Release {
            suite: self.suite.clone(),
            reason: format!("unreadable `Valid-Until: {until}`"),
        })?;
        if now > expires {
            return Err(Error::Expired {
                suite: self.suite.clone(),
                valid_until: until.clone(),
            });
        }
        Ok(())
    }

    /// The entry of an index file, or an error naming it.
    pub fn file(&self, path: &str) -> Result<&FileEntry> {
        self.files.get(path).ok_or_else(|| Error::Release {
            suite: self.suite.clone(),
            reason: format!("it does not list `{path}` (wrong component or architecture?)"),
        })
    }
}

/// Seconds since the Unix epoch, now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Parse the RFC 2822 dates of Release files (`Sat, 11 Jul 2026 10:16:37 UTC`).
pub fn parse_date(s: &str) -> Option<u64> {
    let s = s.split_once(',').map_or(s, |(_, rest)| rest).trim();
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [day, month, year, time, zone] = parts[..] else {
        return None;
    };
    if !matches!(zone, "UTC" | "GMT" | "+0000" | "Z") {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time
        .split(':')
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms[..] else { return None };
    // Days from civil (proleptic Gregorian), Howard Hinnant's well-known formula.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + m * 60 + sec).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "Origin: Debian\nSuite: stable\nCodename: bookworm\nValid-Until: Sat, 11 Jul 2026 10:16:37 UTC\n\
        Acquire-By-Hash: yes\nSHA256:\n \
        9e0b5aabb2465b3d2e7a7fe27f9913846277833f7a2826e7767acccff5b588c5  8790396 main/binary-amd64/Packages.xz\n";

    #[test]
    fn files_and_valid_until() {
        let r = Release::parse(TEXT, "bookworm").unwrap();
        let e = r.file("main/binary-amd64/Packages.xz").unwrap();
        assert_eq!(e.size, 8_790_396);
        assert!(r.acquire_by_hash);
        let until = parse_date("Sat, 11 Jul 2026 10:16:37 UTC").unwrap();
        r.check_valid_until(until).unwrap();
        let err = r.check_valid_until(until + 1).unwrap_err();
        assert!(matches!(err, Error::Expired { .. }), "{err}");
        let err = r.file("contrib/binary-amd64/Packages.xz").unwrap_err();
        assert!(err.to_string().contains("contrib/binary-amd64"), "{err}");
        // `stable` names it too; another suite's Release is refused, however well signed.
        Release::parse(TEXT, "stable").unwrap();
        let err = Release::parse(TEXT, "trixie").unwrap_err().to_string();
        assert!(
            err.contains("suite `stable` (codename `bookworm`)"),
            "{err}"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("Thu, 01 Jan 1970 00:00:00 UTC"), Some(0));
        assert_eq!(
            parse_date("Sat, 10 Jun 2023 08:55:33 UTC"),
            Some(1_686_387_333)
        );
        assert_eq!(parse_date("10 Jun 2023 08:55:33 +0200"), None);
        assert_eq!(parse_date("nonsense"), None);
    }
}
