//! The image a config names, `nua-<id>:<version>[-<release>]`: `metadata.id` must make a
//! valid repository name component and `<version>[-<release>]` a valid tag, or the build
//! would fail at its very end (or write `nua-<id>_….tar` somewhere unexpected, for an id
//! like `../../x`). The rules are Docker's, written here because this module depends on
//! nothing (not on `oci`):
//!
//! - a name component is `[a-z0-9]+([._-][a-z0-9]+)*`, at most 128 characters: the
//!   distribution spec's grammar with one separator at a time, which every real id follows;
//! - a tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
//!
//! Each check returns the message and the hint, or `None` when the value is valid. The id rule
//! is stricter than the spec on purpose (one separator at a time, 128 characters): nua-oci's
//! `tests/config_names.rs` checks that everything accepted here parses there.

/// The longest `metadata.id`.
pub const MAX_ID: usize = 128;
/// The longest tag, `<version>-<release>`.
pub const MAX_TAG: usize = 128;

const ID_RULE: &str = "use lowercase letters, digits, and `.`, `_`, `-` between them";

/// What is wrong with `id` as an image name component: the message and the hint.
pub fn id_problem(id: &str) -> Option<(String, String)> {
    let why = if id.is_empty() {
        "it is empty".to_string()
    } else if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || is_separator(*c)))
    {
        if c.is_uppercase() {
            format!("`{id}` has the upper-case letter `{c}`")
        } else {
            format!("`{id}` has {}", name_char(c))
        }
    } else if let Some(c) = id.chars().next().filter(|c| is_separator(*c)) {
        format!("`{id}` starts with `{c}`")
    } else if let Some(c) = id.chars().last().filter(|c| is_separator(*c)) {
        format!("`{id}` ends with `{c}`")
    } else if let Some(pair) = id
        .as_bytes()
        .windows(2)
        .find(|w| is_separator(w[0].into()) && is_separator(w[1].into()))
    {
        let pair = String::from_utf8_lossy(pair);
        format!("`{id}` has `{pair}`, two separators in a row")
    } else if id.len() > MAX_ID {
        format!(
            "it is {} characters long, and the most is {MAX_ID}",
            id.len()
        )
    } else {
        return None;
    };
    let hint = match suggest_id(id) {
        Some(s) if s != id => format!("{ID_RULE}, e.g. `id = \"{s}\"`"),
        _ => ID_RULE.to_string(),
    };
    Some((
        format!("`metadata.id` is not a valid image name: {why}"),
        hint,
    ))
}

/// What is wrong with the tag `<version>[-<release>]`: the message and the hint; the version is
/// what the user can fix.
pub fn tag_problem(version: &str, release: Option<u64>) -> Option<(String, String)> {
    let tag = match release {
        Some(r) => format!("{version}-{r}"),
        None => version.to_string(),
    };
    let message = if version.is_empty() {
        "`metadata.version` is empty, but it starts the image tag `<version>-<release>`".into()
    } else if let Some(c) = version
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        format!(
            "`metadata.version` cannot be part of an image tag: `{version}` has {}",
            name_char(c)
        )
    } else if let Some(c) = version.chars().next().filter(|c| matches!(c, '.' | '-')) {
        format!("`metadata.version` cannot start an image tag: `{version}` starts with `{c}`")
    } else if tag.len() > MAX_TAG {
        format!(
            "`metadata.version` makes an image tag of {} characters (`<version>-<release>`), and the most is {MAX_TAG}",
            tag.len()
        )
    } else {
        return None;
    };
    Some((
        message,
        "use letters, digits, `_`, `.` and `-` (not first), e.g. `version = \"1.0\"`".into(),
    ))
}

fn is_separator(c: char) -> bool {
    matches!(c, '.' | '_' | '-')
}

/// A character as a message shows it: the invisible ones by name.
fn name_char(c: char) -> String {
    match c {
        ' ' => "a space".into(),
        '\t' => "a tab".into(),
        c if c.is_control() => format!("the control character {c:?}"),
        c => format!("`{c}`"),
    }
}

/// A valid id close to `id`: lower case, every other run of characters made one `-`.
fn suggest_id(id: &str) -> Option<String> {
    let lower = id.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|w| !w.is_empty())
        .collect();
    let mut s = words.join("-");
    s.truncate(MAX_ID);
    let s = s.trim_end_matches('-').to_string();
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("hedgedoc")]
    #[case("dolibarr-mariadb-wrap")]
    #[case("a.b_c-d")]
    #[case("nua-app")]
    #[case("0")]
    fn valid_ids(#[case] id: &str) {
        assert_eq!(id_problem(id), None);
        assert_eq!(id_problem(&"a".repeat(MAX_ID)), None);
    }

    #[rstest]
    #[case("Foo", "`Foo` has the upper-case letter `F`", Some("foo"))]
    #[case("a b", "`a b` has a space", Some("a-b"))]
    #[case("", "it is empty", None)]
    #[case("../../x", "`../../x` has `/`", Some("x"))]
    #[case("-app", "`-app` starts with `-`", Some("app"))]
    #[case("app.", "`app.` ends with `.`", Some("app"))]
    #[case("a__b", "`a__b` has `__`, two separators in a row", Some("a-b"))]
    #[case("café", "`café` has `é`", Some("caf"))]
    fn invalid_ids_say_why_and_suggest(
        #[case] id: &str,
        #[case] why: &str,
        #[case] suggestion: Option<&str>,
    ) {
        let (message, hint) = id_problem(id).unwrap();
        assert_eq!(
            message,
            format!("`metadata.id` is not a valid image name: {why}")
        );
        assert!(hint.starts_with(ID_RULE), "{hint}");
        match suggestion {
            Some(s) => {
                assert!(hint.ends_with(&format!("e.g. `id = \"{s}\"`")), "{hint}");
                assert_eq!(id_problem(s), None);
            }
            None => assert_eq!(hint, ID_RULE),
        }
    }

    #[test]
    fn a_long_id_is_too_long() {
        let (message, _) = id_problem(&"a".repeat(MAX_ID + 1)).unwrap();
        assert!(message.ends_with("it is 129 characters long, and the most is 128"));
    }

    #[rstest]
    #[case("1.0", Some(2))]
    #[case("v1.2.3-rc_1", None)]
    #[case("_x", None)]
    #[case("2023.01", Some(u64::MAX))]
    fn valid_tags(#[case] version: &str, #[case] release: Option<u64>) {
        assert_eq!(tag_problem(version, release), None);
    }

    #[rstest]
    #[case("1 0", None, "cannot be part of an image tag: `1 0` has a space")]
    #[case(
        "1.0+git",
        Some(1),
        "cannot be part of an image tag: `1.0+git` has `+`"
    )]
    #[case(".1", None, "cannot start an image tag: `.1` starts with `.`")]
    #[case("", Some(1), "is empty")]
    fn invalid_tags_name_the_version(
        #[case] version: &str,
        #[case] release: Option<u64>,
        #[case] why: &str,
    ) {
        let (message, _) = tag_problem(version, release).unwrap();
        assert!(
            message.starts_with(&format!("`metadata.version` {why}")),
            "{message}"
        );
    }

    #[test]
    fn the_release_counts_in_the_tag_length() {
        let version = "1".repeat(MAX_TAG - 2);
        assert_eq!(tag_problem(&version, Some(9)), None);
        let (message, _) = tag_problem(&version, Some(10)).unwrap();
        assert!(message.contains("of 129 characters"), "{message}");
    }
}
