//! From a nua-config `builder` name (`python`, `node-16`, `nodejs-18`) to a base of the
//! catalog: an exact name or alias first, else the nearest version of the same family.

use super::catalog::Catalog;
use super::BaseError;

/// A builder name resolved to a base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub base: String,
    /// Set when the name had no exact match and the nearest version was taken.
    pub warning: Option<String>,
}

/// The base an app builds on, and what the user should know about that choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseChoice {
    /// A base of the catalog, or an image reference when `image`.
    pub base: String,
    /// `base` is an image of a registry (see [`super::is_image_reference`]).
    pub image: bool,
    /// A builder name without exact match, extra `builders` that are ignored.
    pub warnings: Vec<String>,
}

/// The base used when a nua-config names no builder.
pub const DEFAULT_BASE: &str = "debian-bookworm";

/// `node-16` → `("node", Some(16))`, `nodejs18` → `("node", Some(18))`, `python` →
/// `("python", None)`: a family (spelling variants folded) and a major version.
fn family_version(name: &str) -> (String, Option<u32>) {
    let name = name.to_ascii_lowercase();
    let split = name
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(name.len());
    let (family, version) = name.split_at(split);
    let family = family.trim_end_matches(['-', '_', '.', ' ']);
    let family = match family {
        "nodejs" => "node",
        "python" | "py" => "python",
        other => other,
    };
    let major = version
        .split(['.', '-'])
        .next()
        .and_then(|v| v.parse().ok());
    (family.to_owned(), major)
}

impl Catalog {
    /// The base of an app whose `[build]` is `build`: its `builder`, else the first of its
    /// `builders`, resolved ([`Catalog::resolve_builder`]); [`DEFAULT_BASE`] when it names
    /// none. The build and its `--dry-run` both choose with this.
    pub fn base_for(&self, build: &nua_config::Build) -> Result<BaseChoice, BaseError> {
        let builders: Vec<String> = match (&build.builder, &build.builders) {
            (Some(one), _) => vec![one.image_name()],
            (None, Some(many)) => many.iter().map(|b| b.image_name()).collect(),
            (None, None) => Vec::new(),
        };
        let mut warnings = Vec::new();
        let base = match builders.first() {
            None => DEFAULT_BASE.to_owned(),
            Some(first) if super::is_image_reference(first) => first.clone(),
            Some(first) => {
                let resolved = self.resolve_builder(first)?;
                warnings.extend(resolved.warning);
                resolved.base
            }
        };
        if builders.len() > 1 {
            warnings.push(format!(
                "only the first of `builders` is used for now (`{}`): the others are ignored",
                builders[0]
            ));
        }
        Ok(BaseChoice {
            image: super::is_image_reference(&base),
            base,
            warnings,
        })
    }

    /// The base for `builder`: its exact name, an alias listed in a base's `builders`, or
    /// the nearest version of the same family (with a warning that says so).
    pub fn resolve_builder(&self, builder: &str) -> Result<Resolved, BaseError> {
        let exact = |base: &str| Resolved {
            base: base.to_owned(),
            warning: None,
        };
        if self.base(builder).is_ok() {
            return Ok(exact(builder));
        }
        let wanted = builder.to_ascii_lowercase();
        for name in self.names() {
            let def = self.base(name)?;
            if def.builders.iter().any(|b| b.eq_ignore_ascii_case(&wanted)) {
                return Ok(exact(name));
            }
        }
        let (family, version) = family_version(builder);
        // Every base of the family with the versions its names carry.
        let mut candidates: Vec<(&str, u32)> = Vec::new();
        for name in self.names() {
            let def = self.base(name)?;
            for alias in std::iter::once(name).chain(def.builders.iter().map(String::as_str)) {
                if let (f, Some(v)) = family_version(alias) {
                    if f == family && !candidates.contains(&(name, v)) {
                        candidates.push((name, v));
                    }
                }
            }
        }
        let available = || {
            let mut names: Vec<String> = candidates.iter().map(|(n, _)| (*n).to_owned()).collect();
            names.dedup();
            names
        };
        let (Some(version), false) = (version, candidates.is_empty()) else {
            return Err(BaseError::UnknownBuilder {
                builder: builder.to_owned(),
                known: self.names().map(str::to_owned).collect(),
            });
        };
        // Nearest major version; on a tie the newer one, which still gets security fixes.
        let (base, found) = candidates
            .iter()
            .min_by_key(|(_, v)| (v.abs_diff(version), std::cmp::Reverse(*v)))
            .copied()
            .expect("candidates is not empty");
        Ok(Resolved {
            base: base.to_owned(),
            warning: Some(format!(
                "builder `{builder}` is not available: using `{base}` ({family} {found}), the \
                 nearest version (available: {})",
                available().join(", ")
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("python", "python", false)]
    #[case("python3", "python", false)]
    #[case("node-18", "node-18", false)]
    #[case("nodejs-18", "node-18", false)]
    #[case("node18", "node-18", false)]
    #[case("node-20", "node-20", false)]
    #[case("NODE-20", "node-20", false)]
    #[case("node", "node-20", false)]
    #[case("node-16", "node-18", true)]
    #[case("node16", "node-18", true)]
    #[case("nodejs-14", "node-18", true)]
    #[case("node-22", "node-20", true)]
    #[case("node-19", "node-20", true)]
    #[case("python-3.12", "python", true)]
    #[case("debian-bookworm", "debian-bookworm", false)]
    fn resolves_builder_names(#[case] name: &str, #[case] base: &str, #[case] warns: bool) {
        let catalog = Catalog::builtin().unwrap();
        let resolved = catalog.resolve_builder(name).unwrap();
        assert_eq!(resolved.base, base);
        assert_eq!(resolved.warning.is_some(), warns, "{:?}", resolved.warning);
    }

    #[test]
    fn the_warning_names_the_choice_and_the_alternatives() {
        let catalog = Catalog::builtin().unwrap();
        let warning = catalog.resolve_builder("node-16").unwrap().warning.unwrap();
        assert_eq!(
            warning,
            "builder `node-16` is not available: using `node-18` (node 18), the nearest \
             version (available: node-18, node-20)"
        );
    }

    #[test]
    fn an_unknown_family_is_an_error() {
        let catalog = Catalog::builtin().unwrap();
        let err = catalog
            .resolve_builder("elixir-1.15")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`elixir-1.15`") && err.contains("python"),
            "{err}"
        );
    }

    #[test]
    fn an_app_builds_on_its_builder_else_the_first_of_its_builders() {
        use nua_config::{Build, Builder};
        let catalog = Catalog::builtin().unwrap();
        let none = catalog.base_for(&Build::default()).unwrap();
        assert_eq!(none.base, DEFAULT_BASE);
        assert!(none.warnings.is_empty());
        let many = Build {
            builders: Some(vec![
                Builder::Name("node-16".into()),
                Builder::Name("python".into()),
            ]),
            ..Build::default()
        };
        let choice = catalog.base_for(&many).unwrap();
        assert_eq!(choice.base, "node-18");
        assert_eq!(choice.warnings.len(), 2, "{:?}", choice.warnings);
        let one = Build {
            builder: Some(Builder::Name("python".into())),
            ..many
        };
        assert_eq!(catalog.base_for(&one).unwrap().base, "python");
    }
}
