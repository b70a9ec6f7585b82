//! Relationship fields (Debian Policy 7.1): `a (>= 1) | b:any, c [amd64]`.
//!
//! A field is a list of groups joined by `,` (all needed); a group is a list of alternatives
//! joined by `|` (one is enough). Architecture lists `[...]` keep or drop a relation for the
//! target architecture; build profiles `<...>` are ignored (they only matter to builds).

use super::error::{Error, Result};
use super::version::Version;

/// Version operators of Policy 7.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "<<" => Op::Lt,
            "<=" | "<" => Op::Le,
            "=" => Op::Eq,
            ">=" | ">" => Op::Ge,
            ">>" => Op::Gt,
            _ => return None,
        })
    }

    /// Whether `have` satisfies `have OP want`.
    pub fn holds(self, have: &Version, want: &Version) -> bool {
        let ord = have.cmp(want);
        match self {
            Op::Lt => ord.is_lt(),
            Op::Le => ord.is_le(),
            Op::Eq => ord.is_eq(),
            Op::Ge => ord.is_ge(),
            Op::Gt => ord.is_gt(),
        }
    }
}

impl Op {
    /// The operator as Policy 7.1 writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">>",
        }
    }
}

/// One alternative: a package name with an optional version constraint.
#[derive(Debug, Clone, PartialEq)]
pub struct Dep {
    pub name: String,
    /// `:any`, `:native` or an architecture name.
    pub arch_qualifier: Option<String>,
    pub version: Option<(Op, Version)>,
}

/// Written back as a relation field has it: `name[:qualifier] [(op version)]`.
impl std::fmt::Display for Dep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        if let Some(q) = &self.arch_qualifier {
            write!(f, ":{q}")?;
        }
        if let Some((op, version)) = &self.version {
            write!(f, " ({} {version})", op.as_str())?;
        }
        Ok(())
    }
}

impl Dep {
    /// Whether a package (or a Provides) of this version satisfies the constraint.
    /// `None` is an unversioned Provides, which satisfies only unversioned relations.
    pub fn accepts(&self, version: Option<&Version>) -> bool {
        match (&self.version, version) {
            (None, _) => true,
            (Some((op, want)), Some(have)) => op.holds(have, want),
            (Some(_), None) => false,
        }
    }
}

/// Parse a relationship field for `arch` (groups whose arch list excludes it are dropped).
pub fn parse(field: &str, arch: &str) -> Result<Vec<Vec<Dep>>> {
    let mut groups = Vec::new();
    for group in field.split(',') {
        if group.trim().is_empty() {
            continue;
        }
        let mut alts = Vec::new();
        for alt in group.split('|') {
            if let Some(dep) = parse_one(alt, arch, field)? {
                alts.push(dep);
            }
        }
        if !alts.is_empty() {
            groups.push(alts);
        }
    }
    Ok(groups)
}

/// Parse `Provides`: a flat list, each optionally with `(= version)`.
pub fn parse_provides(field: &str, arch: &str) -> Result<Vec<Dep>> {
    Ok(parse(field, arch)?.into_iter().flatten().collect())
}

fn parse_one(alt: &str, arch: &str, field: &str) -> Result<Option<Dep>> {
    let bad = |reason: &str| Error::Relation {
        value: field.trim().to_owned(),
        reason: reason.to_owned(),
    };
    let mut rest = alt.trim();
    // Build profiles never restrict binary relations; drop them.
    if let Some(i) = rest.find('<').filter(|&i| !rest[..i].contains('(')) {
        rest = rest[..i].trim();
    }
    let mut arch_ok = true;
    if let Some(i) = rest.find('[') {
        let end = rest.find(']').ok_or_else(|| bad("`[` without `]`"))?;
        let list: Vec<&str> = rest[i + 1..end].split_whitespace().collect();
        let negated = list.iter().any(|a| a.starts_with('!'));
        let listed = list.iter().any(|a| a.trim_start_matches('!') == arch);
        arch_ok = if negated { !listed } else { listed };
        rest = rest[..i].trim();
    }
    let (name_part, version) = match rest.find('(') {
        Some(i) => {
            let inner = rest[i + 1..]
                .strip_suffix(')')
                .ok_or_else(|| bad("`(` without `)`"))?
                .trim();
            let op_len = inner
                .find(|c: char| !"<>=".contains(c))
                .ok_or_else(|| bad("a version constraint needs a version"))?;
            let op = Op::parse(&inner[..op_len]).ok_or_else(|| bad("unknown version operator"))?;
            (
                rest[..i].trim(),
                Some((op, Version::parse(inner[op_len..].trim())?)),
            )
        }
        None => (rest, None),
    };
    let (name, arch_qualifier) = match name_part.split_once(':') {
        Some((n, q)) => (n, Some(q.to_owned())),
        None => (name_part, None),
    };
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c);
    if name.is_empty() || !name.chars().all(valid) {
        return Err(bad(&format!("invalid package name `{name}`")));
    }
    Ok(arch_ok.then(|| Dep {
        name: name.to_owned(),
        arch_qualifier,
        version,
    }))
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn show(groups: &[Vec<Dep>]) -> String {
        let alt = |d: &Dep| {
            let q = d.arch_qualifier.as_ref().map(|q| format!(":{q}"));
            let v = d.version.as_ref().map(|(op, v)| format!(" ({op:?} {v})"));
            format!(
                "{}{}{}",
                d.name,
                q.unwrap_or_default(),
                v.unwrap_or_default()
            )
        };
        let groups: Vec<String> = groups
            .iter()
            .map(|g| g.iter().map(alt).collect::<Vec<_>>().join(" | "))
            .collect();
        groups.join(", ")
    }

    #[rstest]
    #[case("libc6 (>= 2.34)", "libc6 (Ge 2.34)")]
    #[case("a (>= 1) | b:any, c [amd64]", "a (Ge 1) | b:any, c")]
    #[case("c [!amd64], d [i386 arm64]", "")]
    #[case("c [!i386]", "c")]
    #[case(
        "x (<< 2:1.0~), y (= 1-1), z(>>0)",
        "x (Lt 2:1.0~), y (Eq 1-1), z (Gt 0)"
    )]
    #[case("foo <!nocheck>, bar:native", "foo, bar:native")]
    #[case("", "")]
    #[case("a,\n b | c", "a, b | c")]
    fn relations(#[case] field: &str, #[case] expected: &str) {
        assert_eq!(show(&parse(field, "amd64").unwrap()), expected);
    }

    #[rstest]
    #[case("a (>= 1")]
    #[case("a (~ 1)")]
    #[case("A")]
    #[case("a (>= )")]
    fn invalid(#[case] field: &str) {
        assert!(parse(field, "amd64").is_err(), "{field}");
    }

    #[test]
    fn versioned_provides() {
        let p = parse_provides("awk, libfoo (= 1.2)", "amd64").unwrap();
        let want = &parse("libfoo (>= 1)", "amd64").unwrap()[0][0];
        assert!(!want.accepts(None));
        assert!(want.accepts(p[1].version.as_ref().map(|(_, v)| v)));
    }
}
