//! Dependency resolution: from seeds (named packages, `Essential: yes`, optionally
//! `Priority: required`) to the closed set of packages to install, following `Pre-Depends`
//! and `Depends` (not `Recommends`), as Debian Policy 7.2 defines them.
//!
//! For each relation group, the first alternative already satisfied (by a chosen or an
//! installed package, directly or through `Provides`) wins; otherwise the first alternative
//! that a real package of the index satisfies, else a provider of it (by priority, then
//! name). Work is done in a FIFO order fixed by the input, so the same index and request
//! always give the same answer. `Conflicts` and `Breaks` are not checked.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::error::{Error, Result};
use super::index::{Index, Package};
use super::relation::{self, Dep};
use super::status::Installed;
use super::version::Version;

/// What to install.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Packages asked for by name (a virtual name picks a provider).
    pub include: Vec<String>,
    /// Add every `Essential: yes` package (a bootstrap).
    pub essential: bool,
    /// Add every `Priority: required` package.
    pub required: bool,
}

/// One entry of a lock file: everything needed to fetch and verify a package again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locked {
    pub name: String,
    pub version: String,
    /// The suite whose index lists it (`bookworm-security`): where it is downloaded from.
    /// Empty in locks written before suites were recorded: the source's release suite.
    #[serde(default)]
    pub suite: String,
    pub architecture: String,
    /// Pool path relative to the mirror (`pool/main/a/apt/apt_2.6.1_amd64.deb`).
    pub filename: String,
    pub size: u64,
    pub sha256: String,
}

impl Locked {
    fn from_package(p: &Package) -> Locked {
        Locked {
            name: p.name.clone(),
            version: p.version.to_string(),
            suite: p.suite.clone(),
            architecture: p.architecture.clone(),
            filename: p.filename.clone(),
            size: p.size,
            sha256: p.sha256.clone(),
        }
    }
}

/// A package present in the result: its version and what it provides.
struct Present {
    version: Version,
    provides: Vec<Dep>,
}

impl Index {
    /// Resolve `req` on top of `installed` (kept as they are); new packages sorted by name.
    pub fn resolve(&self, req: &Request, installed: &[Installed]) -> Result<Vec<Locked>> {
        let mut present: BTreeMap<String, Present> = BTreeMap::new();
        for i in installed {
            let version = Version::parse(&i.version)?;
            let provides = relation::parse_provides(&i.provides, &self.arch)?;
            present.insert(i.name.clone(), Present { version, provides });
        }
        let mut chosen: BTreeMap<String, &Package> = BTreeMap::new();
        let mut queue: VecDeque<&Package> = VecDeque::new();
        let mut seeds: Vec<(Dep, Option<String>)> = Vec::new();
        for name in &req.include {
            let dep = relation::parse(name, &self.arch)?
                .into_iter()
                .flatten()
                .next()
                .ok_or_else(|| Error::Relation {
                    value: name.clone(),
                    reason: "an empty package name".to_owned(),
                })?;
            seeds.push((dep, None));
        }
        // unpack_layer makes a merged-/usr root: say so to the packages that ask
        // (`usrmerge | usr-is-merged`), instead of installing the converter, as debootstrap does.
        if req.essential && self.packages.contains_key("usr-is-merged") {
            seeds.push((plain("usr-is-merged"), None));
        }
        for p in self.packages.values() {
            if (req.essential && p.essential) || (req.required && p.priority == "required") {
                seeds.push((plain(&p.name), None));
            }
        }
        let mut groups: VecDeque<(Vec<Dep>, Option<String>)> =
            seeds.into_iter().map(|(d, by)| (vec![d], by)).collect();
        loop {
            while let Some((group, needed_by)) = groups.pop_front() {
                if satisfied(&group, &present) {
                    continue;
                }
                let pkg = self
                    .pick(&group)
                    .ok_or_else(|| unresolvable(&group, needed_by))?;
                present.insert(
                    pkg.name.clone(),
                    Present {
                        version: pkg.version.clone(),
                        provides: pkg.provides.clone(),
                    },
                );
                chosen.insert(pkg.name.clone(), pkg);
                queue.push_back(pkg);
            }
            let Some(pkg) = queue.pop_front() else { break };
            for field in [&pkg.pre_depends, &pkg.depends] {
                for group in relation::parse(field, &self.arch)? {
                    groups.push_back((group, Some(pkg.name.clone())));
                }
            }
        }
        Ok(chosen.values().map(|p| Locked::from_package(p)).collect())
    }

    /// The package chosen for an unsatisfied group, if any alternative can be satisfied.
    fn pick(&self, group: &[Dep]) -> Option<&Package> {
        group.iter().find_map(|dep| {
            if let Some(p) = self.packages.get(&dep.name) {
                if dep.accepts(Some(&p.version)) {
                    return Some(p);
                }
            }
            let providers = self.providers.get(&dep.name)?;
            providers
                .iter()
                .filter(|(_, v)| dep.accepts(v.as_ref()))
                .filter_map(|(name, _)| self.packages.get(name))
                .min_by_key(|p| (priority_rank(&p.priority), p.name.as_str()))
        })
    }
}

fn plain(name: &str) -> Dep {
    Dep {
        name: name.to_owned(),
        arch_qualifier: None,
        version: None,
    }
}

/// Whether a present package (or something it provides) satisfies one alternative.
fn satisfied(group: &[Dep], present: &BTreeMap<String, Present>) -> bool {
    group.iter().any(|dep| {
        let direct = present
            .get(&dep.name)
            .is_some_and(|p| dep.accepts(Some(&p.version)));
        direct
            || present.values().any(|p| {
                p.provides.iter().any(|prov| {
                    prov.name == dep.name && dep.accepts(prov.version.as_ref().map(|(_, v)| v))
                })
            })
    })
}

fn unresolvable(group: &[Dep], needed_by: Option<String>) -> Error {
    let show = |d: &Dep| match &d.version {
        Some((op, v)) => format!("{} ({op:?} {v})", d.name),
        None => d.name.clone(),
    };
    let alts: Vec<String> = group.iter().map(show).collect();
    Error::Unresolvable {
        package: group[0].name.clone(),
        needed_by,
        reason: format!("nothing in the index satisfies `{}`", alts.join(" | ")),
    }
}

fn priority_rank(priority: &str) -> u8 {
    match priority {
        "required" => 0,
        "important" => 1,
        "standard" => 2,
        "optional" => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> Index {
        let pkgs = [
            (
                "base",
                "1",
                "Essential: yes\nPre-Depends: libc (>= 2)\nDepends: awk",
            ),
            ("libc", "2.1", ""),
            ("mawk", "1.3", "Provides: awk\nPriority: required"),
            ("gawk", "5", "Provides: awk\nPriority: optional"),
            (
                "tool",
                "1",
                "Depends: missing | libc (>> 3) | newlib (>= 1)",
            ),
            ("newlib", "1.0", "Provides: libapi (= 4)"),
            ("app", "1", "Depends: libapi (>= 3), base"),
            ("broken", "1", "Depends: libc (>= 9)"),
            ("rec", "1", "Recommends: gawk\nDepends: mawk"),
        ];
        let mut text = String::new();
        for (name, version, extra) in pkgs {
            let extra = if extra.is_empty() {
                "Priority: optional"
            } else {
                extra
            };
            text.push_str(&format!(
                "Package: {name}\nVersion: {version}\nArchitecture: amd64\n{extra}\n\
                 Filename: pool/{name}.deb\nSize: 1\nSHA256: {}\n\n",
                "0".repeat(64)
            ));
        }
        Index::from_packages(text.as_bytes(), "amd64", "Packages").unwrap()
    }

    fn names(locked: &[Locked]) -> Vec<&str> {
        locked.iter().map(|l| l.name.as_str()).collect()
    }

    fn req(include: &[&str], essential: bool) -> Request {
        Request {
            include: include.iter().map(|s| s.to_string()).collect(),
            essential,
            required: false,
        }
    }

    #[test]
    fn essential_with_virtual_and_version() {
        let r = index().resolve(&req(&[], true), &[]).unwrap();
        assert_eq!(names(&r), ["base", "libc", "mawk"]);
    }

    #[test]
    fn alternatives_and_versioned_provides() {
        let r = index()
            .resolve(&req(&["app", "tool", "rec"], false), &[])
            .unwrap();
        assert_eq!(
            names(&r),
            ["app", "base", "libc", "mawk", "newlib", "rec", "tool"]
        );
    }

    #[test]
    fn installed_packages_are_kept() {
        let installed = [Installed {
            name: "libc".into(),
            version: "2.5".into(),
            architecture: "amd64".into(),
            provides: String::new(),
        }];
        let r = index().resolve(&req(&["base"], false), &installed).unwrap();
        assert_eq!(names(&r), ["base", "mawk"]);
    }

    #[test]
    fn missing_names_the_package_and_who_needs_it() {
        let err = index().resolve(&req(&["broken"], false), &[]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("`libc`") && msg.contains("needed by `broken`"),
            "{msg}"
        );
        let err = index().resolve(&req(&["nope"], false), &[]).unwrap_err();
        assert!(err.to_string().contains("`nope`"), "{err}");
    }
}
