//! Tests of the whole pipeline on small configs written inline.

use super::*;
use rstest::rstest;

const MINIMAL: &str = "[metadata]\nid = \"app\"\nversion = \"1.0\"\nrelease = 2\n";

fn load_toml(text: &str) -> Result<(NuaConfig, Vec<Warning>), Error> {
    load_str(
        text,
        Format::Toml,
        Path::new("nua-config.toml"),
        &LoadOptions::default(),
    )
}

#[rstest]
#[case("app", Some(2), "nua-app:1.0-2", "nua-app_1.0-2.tar")]
#[case("nua-app", Some(2), "nua-app:1.0-2", "nua-app_1.0-2.tar")]
#[case("app", None, "nua-app:1.0", "nua-app_1.0.tar")]
fn image_names(
    #[case] id: &str,
    #[case] release: Option<u64>,
    #[case] tag: &str,
    #[case] file: &str,
) {
    let mut config = load_toml(MINIMAL).unwrap().0;
    config.metadata.id = id.into();
    config.metadata.release = release;
    assert_eq!(config.image_tag(), tag);
    assert_eq!(config.image_file_name(), file);
}

#[test]
fn a_minimal_config_is_normalized() {
    let (config, warnings) = load_toml(&format!(
        "{MINIMAL}[build]\nsrc-url = \"x/{{id}}-{{version}}.tgz\"\n[run]\nstart = \"go\"\n"
    ))
    .unwrap();
    assert!(warnings.is_empty());
    assert_eq!(config.build.src_url.as_deref(), Some("x/app-1.0.tgz"));
    assert_eq!(config.build_method(), BuildMethod::Build);
    assert_eq!(config.start_commands(), ["go"]);
    assert_eq!(config.normalized_json()["build"]["method"], "build");
}

#[test]
fn env_values_keep_their_types() {
    let (config, _) = load_toml(&format!("{MINIMAL}[env]\nA = 1\nB = true\nC = 2.5\nD = \"x\"\nE = {{ random = \"true\", length = 12 }}\n")).unwrap();
    let env = &config.normalized_json()["env"];
    assert_eq!(env["A"], 1);
    assert_eq!(env["B"], true);
    assert_eq!(env["C"], 2.5);
    assert_eq!(env["E"], serde_json::json!({"random": true, "length": 12}));
    assert_eq!(config.env["E"].kind(), EnvKind::Random);
}

#[test]
fn volume_options_are_kept_as_written() {
    let text = format!("{MINIMAL}[[volume]]\nname = \"t\"\ntarget = \"/t\"\noptions = {{ tmpfs_size = \"10G\", IdentityFile = \"k\" }}\n");
    let (config, _) = load_toml(&text).unwrap();
    let options = &config.normalized_json()["volume"][0]["options"];
    assert_eq!(options["tmpfs_size"], "10G");
    assert_eq!(options["IdentityFile"], "k");
}

#[test]
fn builder_tables_mean_the_same_as_strings() {
    let (config, _) = load_toml(&format!(
        "{MINIMAL}[build]\nbuilder = {{ name = \"ruby\", version = \"3.2\" }}\n"
    ))
    .unwrap();
    assert_eq!(config.build.builder.unwrap().image_name(), "ruby-3.2");
}

#[test]
fn strict_turns_warnings_into_errors() {
    let text = format!("{MINIMAL}license = \"MIT\"\n");
    assert_eq!(load_toml(&text).unwrap().1.len(), 1);
    let strict = load_str(
        &text,
        Format::Toml,
        Path::new("f.toml"),
        &LoadOptions { strict: true },
    );
    assert!(matches!(strict, Err(Error::Strict { .. })));
}

#[rstest]
#[case("[build]\nmethod = \"wrap\"\n", "no `build.base-image` to wrap")]
#[case("[build]\nsrc-checksum = \"abc\"\n", "found 3 characters")]
#[case(
    "[build]\nsrc-checksum = \"sha256:zz\"\n",
    "found `z`, which is not hexadecimal"
)]
#[case("[port.smtp]\ncontainer = 25\n", "published nowhere")]
#[case(
    "[[provider]]\nname = \"a\"\n[[provider]]\nname = \"a\"\n",
    "two providers are named `a`"
)]
fn whole_config_checks(#[case] extra: &str, #[case] message: &str) {
    let err = load_toml(&format!("{MINIMAL}{extra}"))
        .unwrap_err()
        .to_string();
    assert!(err.contains(message), "{err}");
}

/// The image name and tag are checked where the key is written.
#[rstest]
#[case("id = \"Foo\"\nversion = \"1.0\"\n", "nua-config.toml:2:1: `metadata.id` is not a valid image name: `Foo` has the upper-case letter `F`")]
#[case(
    "version = \"1.0\"\nid = \"../../x\"\n",
    "nua-config.toml:3:1: `metadata.id` is not a valid image name: `../../x` has `/`"
)]
#[case(
    "id = \"app\"\nversion = \"1 0\"\n",
    "nua-config.toml:3:1: `metadata.version` cannot be part of an image tag: `1 0` has a space"
)]
fn image_names_are_checked_at_their_key(#[case] metadata: &str, #[case] message: &str) {
    let err = load_toml(&format!("[metadata]\n{metadata}")).unwrap_err();
    assert_eq!(err.to_string(), message);
    assert!(err.hint().is_some_and(|h| h.starts_with("use ")), "{err:?}");
}
