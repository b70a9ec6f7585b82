//! nua-config checks `metadata.id` and the tag `<version>-<release>` itself (it depends on
//! nothing), with messages for people; the reference parser here is the one that must accept
//! the image name in the end. Whatever nua-config accepts must parse here; what it refuses
//! does not, except where nua-config is stricter on purpose (listed as such).

use nua_config::image_name::{id_problem, tag_problem, MAX_ID};
use nua_oci::{ImageName, Reference};
use rstest::rstest;

/// Whether `id` makes a valid repository, bare and as the build names it (`nua-<id>`).
fn id_parses(id: &str) -> bool {
    Reference::parse(&format!("{id}:1")).is_ok() && ImageName::parse(&format!("nua-{id}:1")).is_ok()
}

#[rstest]
#[case::plain("hedgedoc")]
#[case::dashes("dolibarr-mariadb-wrap")]
#[case::every_separator("a.b_c-d")]
#[case::digit("0")]
#[case::prefixed("nua-app")]
#[case::longest(&"a".repeat(MAX_ID))]
fn ids_nua_config_accepts_parse(#[case] id: &str) {
    assert_eq!(id_problem(id), None);
    assert!(id_parses(id), "{id}");
}

#[rstest]
#[case::upper_case("Foo")]
#[case::space("a b")]
#[case::empty("")]
#[case::path("../../x")]
#[case::leading_separator("-app")]
#[case::trailing_separator("app.")]
#[case::non_ascii("café")]
#[case::slash("team/app")]
#[case::colon("app:1")]
fn ids_nua_config_refuses_do_not_parse(#[case] id: &str) {
    assert!(id_problem(id).is_some(), "{id}");
    assert!(!Reference::parse(&format!("{id}:1")).is_ok_and(|r| r.base_name() == id));
}

/// The spec allows `__`, runs of `-` and names up to 255 characters; nua-config keeps ids to
/// one separator at a time and 128 characters, which every real id follows.
#[rstest]
#[case::double_underscore("a__b")]
#[case::double_dash("a--b")]
#[case::long(&"a".repeat(MAX_ID + 1))]
fn ids_nua_config_refuses_on_purpose_still_parse(#[case] id: &str) {
    assert!(id_problem(id).is_some(), "{id}");
    assert!(id_parses(id), "{id}");
}

fn tag_parses(version: &str, release: Option<u64>) -> bool {
    let tag = match release {
        Some(r) => format!("{version}-{r}"),
        None => version.to_owned(),
    };
    Reference::parse(&format!("app:{tag}")).is_ok()
        && ImageName::parse(&format!("nua-app:{tag}")).is_ok()
}

#[rstest]
#[case("1.0", Some(2), true)]
#[case("v1.2.3-rc_1", None, true)]
#[case("_x", None, true)]
#[case("2023.01", Some(u64::MAX), true)]
#[case(&"1".repeat(126), Some(9), true)]
#[case("1 0", None, false)]
#[case("1.0+git", Some(1), false)]
#[case(".1", None, false)]
#[case("-1", None, false)]
#[case("", Some(1), false)]
#[case(&"1".repeat(126), Some(10), false)]
fn tags_agree(#[case] version: &str, #[case] release: Option<u64>, #[case] valid: bool) {
    assert_eq!(
        tag_problem(version, release).is_none(),
        valid,
        "{version:?} {release:?}"
    );
    assert_eq!(
        tag_parses(version, release),
        valid,
        "{version:?} {release:?}"
    );
}
