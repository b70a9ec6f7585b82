//! Debian version numbers and their ordering (Debian Policy 5.6.12, deb-version(7)):
//! `[epoch:]upstream[-revision]`, compared part by part with dpkg's algorithm, where `~`
//! sorts before everything, even the end of the string.

use std::cmp::Ordering;
use std::fmt;

use super::error::{Error, Result};

/// A parsed version; ordering is dpkg's, equality is ordering equality (`0:1` == `1`).
#[derive(Debug, Clone)]
pub struct Version {
    pub epoch: u32,
    pub upstream: String,
    pub revision: String,
}

impl Version {
    /// Parse a version string.
    pub fn parse(value: &str) -> Result<Version> {
        let bad = |reason| Error::Version {
            value: value.to_owned(),
            reason,
        };
        let s = value.trim();
        if s.is_empty() {
            return Err(bad("a version cannot be empty"));
        }
        if s.contains(char::is_whitespace) {
            return Err(bad("a version has no spaces"));
        }
        let (epoch, rest) = match s.split_once(':') {
            Some((e, rest)) => (
                e.parse::<u32>()
                    .map_err(|_| bad("the epoch must be a number"))?,
                rest,
            ),
            None => (0, s),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((u, r)) => (u, r),
            None => (rest, ""),
        };
        if !upstream.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(bad("the upstream version must start with a digit"));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || ".+~-:".contains(c);
        if !upstream.chars().all(allowed) || !revision.chars().all(|c| allowed(c) && c != '-') {
            return Err(bad("only alphanumerics and `.+~-:` are allowed"));
        }
        Ok(Version {
            epoch,
            upstream: upstream.to_owned(),
            revision: revision.to_owned(),
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.epoch != 0 {
            write!(f, "{}:", self.epoch)?;
        }
        f.write_str(&self.upstream)?;
        if !self.revision.is_empty() {
            write!(f, "-{}", self.revision)?;
        }
        Ok(())
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| compare_part(&self.upstream, &other.upstream))
            .then_with(|| compare_part(&self.revision, &other.revision))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

/// Weight of a character in the non-digit runs: `~` first, then the end of the string,
/// then letters, then everything else (deb-version(7)).
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

/// Alternate non-digit runs (compared by [`order`]) and digit runs (compared as numbers).
fn compare_part(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let (ca, cb) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ca != cb {
                return ca.cmp(&cb);
            }
            i += 1;
            j += 1;
        }
        let digits = |s: &[u8], k: &mut usize| {
            while *k < s.len() && s[*k] == b'0' {
                *k += 1;
            }
            let start = *k;
            while *k < s.len() && s[*k].is_ascii_digit() {
                *k += 1;
            }
            start..*k
        };
        let (ra, rb) = (digits(a, &mut i), digits(b, &mut j));
        let (da, db) = (&a[ra], &b[rb]);
        let by_value = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
        if by_value != Ordering::Equal {
            return by_value;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case("1.0", "1.0", Ordering::Equal)]
    #[case("0:1.0", "1.0", Ordering::Equal)]
    #[case("1.0-0", "1.0", Ordering::Equal)]
    #[case("1.0", "1.1", Ordering::Less)]
    #[case("1:0.1", "2.0", Ordering::Greater)]
    #[case("1.0~rc1", "1.0", Ordering::Less)]
    #[case("1.0~~", "1.0~", Ordering::Less)]
    #[case("1.0~", "1.0", Ordering::Less)]
    #[case("1.0", "1.0+b1", Ordering::Less)]
    #[case("1.0a", "1.0", Ordering::Greater)]
    #[case("1.0a", "1.0+", Ordering::Less)]
    #[case("1.10", "1.9", Ordering::Greater)]
    #[case("1.010", "1.10", Ordering::Equal)]
    #[case("2.36-9+deb12u4", "2.36-9+deb12u10", Ordering::Less)]
    #[case("2.36-9", "2.36-9+deb12u1", Ordering::Less)]
    #[case("1.2.3-1", "1.2.3-1~bpo1", Ordering::Greater)]
    #[case("1:1.2-3-4", "1:1.2-3", Ordering::Greater)]
    #[case("7.88.1-10+deb12u5", "7.88.1-10+deb12u12", Ordering::Less)]
    fn dpkg_ordering(#[case] a: &str, #[case] b: &str, #[case] expected: Ordering) {
        let (va, vb) = (Version::parse(a).unwrap(), Version::parse(b).unwrap());
        assert_eq!(va.cmp(&vb), expected, "{a} vs {b}");
        assert_eq!(vb.cmp(&va), expected.reverse(), "{b} vs {a}");
    }

    #[rstest]
    #[case("")]
    #[case("a1.0")]
    #[case("x:1.0")]
    #[case("1.0 2")]
    #[case("1.0_2")]
    fn invalid(#[case] v: &str) {
        assert!(Version::parse(v).is_err(), "{v}");
    }

    #[test]
    fn split_and_display() {
        let v = Version::parse("1:1.2-3-4").unwrap();
        assert_eq!(
            (v.epoch, v.upstream.as_str(), v.revision.as_str()),
            (1, "1.2-3", "4")
        );
        assert_eq!(v.to_string(), "1:1.2-3-4");
    }
}
