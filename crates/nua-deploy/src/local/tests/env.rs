//! The environment: plain values, overrides, generated values.

use super::*;
use crate::values::random_value;

#[rstest]
#[case::plain_values(
    "[env]\nA = \"x\"\nB = true\nC = 42\nD = 2.5\nE = false\n",
    &[],
    &[("A", "x"), ("B", "true"), ("C", "42"), ("D", "2.5"), ("E", "false")],
    &[]
)]
#[case::override_wins(
    "[env]\nA = \"x\"\nB = 1\n",
    &[("A", "y")],
    &[("A", "y"), ("B", "1")],
    &[]
)]
#[case::override_of_a_key_not_in_the_config(
    "[env]\nA = \"x\"\n",
    &[("Z", "z=with=equals")],
    &[("A", "x"), ("Z", "z=with=equals")],
    &[]
)]
#[case::last_override_wins(
    "",
    &[("A", "1"), ("A", "2")],
    &[("A", "2")],
    &[]
)]
#[case::value_from_a_provider(
    "[[provider]]\nname = \"db\"\n[env]\nA = \"x\"\nDB_HOST = { from = \"db\", key = \"hostname\" }\n",
    &[],
    &[("A", "x")],
    &["`DB_HOST` is computed by a deployment (from a provider); it is not set: give it with `--env DB_HOST=…`"]
)]
#[case::unique_user(
    "[env]\nDB_USER = { unique_user = true }\n",
    &[],
    &[],
    &["`DB_USER` is computed by a deployment (a unique user name); it is not set: give it with `--env DB_USER=…`"]
)]
#[case::unique_db(
    "[env]\nDB_NAME = { unique_db = \"true\" }\n",
    &[],
    &[],
    &["`DB_NAME` is computed by a deployment (a unique database name); it is not set: give it with `--env DB_NAME=…`"]
)]
#[case::computed_value_given_as_an_override(
    "[[provider]]\nname = \"db\"\n[env]\nDB_HOST = { from = \"db\", key = \"hostname\" }\nDB_USER = { unique_user = true }\n",
    &[("DB_HOST", "localhost"), ("DB_USER", "me")],
    &[("DB_HOST", "localhost"), ("DB_USER", "me")],
    &[]
)]
#[case::random_value_given_as_an_override(
    "[env]\nSECRET = { random = true, length = 12 }\n",
    &[("SECRET", "mine")],
    &[("SECRET", "mine")],
    &[]
)]
fn environment(
    #[case] extra: &str,
    #[case] overrides: &[(&str, &str)],
    #[case] expected: &[(&str, &str)],
    #[case] notes: &[&str],
) {
    let plan = plan(&request(Some(extra), &[], overrides), &Ports::free(), &[]).unwrap();
    let expected: BTreeMap<String, String> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(effective(&plan.spec.env), expected, "{:?}", plan.spec.env);
    assert_eq!(plan.notes, notes);
}

#[test]
fn overrides_come_after_the_config_values() {
    let request = request(Some("[env]\nA = \"x\"\n"), &[], &[("A", "y")]);
    let plan = plan(&request, &Ports::free(), &[]).unwrap();
    let last = plan.spec.env.iter().rposition(|kv| kv.starts_with("A="));
    assert_eq!(last.map(|i| plan.spec.env[i].as_str()), Some("A=y"));
}

#[test]
fn no_config_sets_only_the_overrides() {
    let request = request(None, &[], &[("A", "1")]);
    let plan = plan(&request, &Ports::free(), &[]).unwrap();
    assert_eq!(plan.spec.env, ["A=1"]);
    assert!(plan.spec.mounts.is_empty());
    assert!(plan.volumes.is_empty());
    assert!(plan.notes.is_empty());
}

fn random_secret(extra: &str) -> String {
    let plan = plan(&request(Some(extra), &[], &[]), &Ports::free(), &[]).unwrap();
    effective(&plan.spec.env)
        .remove("SECRET")
        .expect("SECRET is set")
}

#[rstest]
#[case::length_12("[env]\nSECRET = { random = true, length = 12 }\n", 12)]
#[case::quoted_flag("[env]\nSECRET = { random = \"true\", length = 12 }\n", 12)]
#[case::default_length("[env]\nSECRET = { random = true }\n", 24)]
#[case::length_200("[env]\nSECRET = { random = true, length = 200 }\n", 200)]
fn random_values_are_generated(#[case] extra: &str, #[case] length: usize) {
    let first = random_secret(extra);
    let second = random_secret(extra);
    for value in [&first, &second] {
        assert_eq!(value.len(), length, "{value}");
        assert!(value.chars().all(|c| c.is_ascii_alphanumeric()), "{value}");
    }
    assert_ne!(first, second);
}

#[test]
fn long_random_values_have_their_length() {
    let value = random_secret("[env]\nSECRET = { random = true, length = 600 }\n");
    assert_eq!(value.len(), 600);
}

#[test]
fn short_random_values_always_have_their_length() {
    for _ in 0..20_000 {
        assert_eq!(random_value(1).len(), 1);
        assert_eq!(random_value(2).len(), 2);
    }
}
