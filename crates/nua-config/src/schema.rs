//! The JSON Schema of nua-config, generated from the Rust types of [`super::model`]; the doc
//! comments become descriptions. `schemas/nua-config.schema.json` is this, checked in.

use super::model::NuaConfig;

/// The JSON Schema of a nua-config file (draft 2020-12).
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(NuaConfig);
    let mut value = schema.to_value();
    if let Some(obj) = value.as_object_mut() {
        obj.insert(
            "$id".into(),
            "https://nua.rocks/schemas/nua-config.schema.json".into(),
        );
    }
    value
}

/// The schema, generated once per process: [`super::load`] walks it for every file.
pub(crate) fn cached() -> &'static serde_json::Value {
    static SCHEMA: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(json_schema)
}

/// The schema rendered as the checked-in file: pretty JSON with a final newline.
pub fn json_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&json_schema()).expect("a schema serializes");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::Value;

    fn def<'s>(schema: &'s Value, name: &str) -> &'s Value {
        &schema["$defs"][name]
    }

    #[rstest]
    #[case("Metadata", "id")]
    #[case("Build", "src-url")]
    #[case("Port", "container")]
    #[case("Volume", "options")]
    #[case("Provider", "module-version")]
    fn fields_carry_their_doc_comments(#[case] ty: &str, #[case] field: &str) {
        let schema = json_schema();
        let description = def(&schema, ty)["properties"][field]["description"].as_str();
        assert!(
            description.is_some_and(|d| !d.is_empty()),
            "{ty}.{field} has no description"
        );
    }

    #[rstest]
    #[case("Metadata")]
    #[case("Build")]
    #[case("Run")]
    #[case("Port")]
    #[case("Volume")]
    #[case("Provider")]
    #[case("EnvSpec")]
    fn structured_tables_reject_unknown_keys(#[case] ty: &str) {
        assert_eq!(
            def(&json_schema(), ty)["additionalProperties"],
            Value::Bool(false)
        );
    }

    #[test]
    fn free_form_tables_accept_any_key() {
        let schema = json_schema();
        let options = &def(&schema, "Volume")["properties"]["options"];
        assert_ne!(
            options.get("additionalProperties"),
            Some(&Value::Bool(false)),
            "{options}"
        );
        assert_eq!(schema["required"], serde_json::json!(["metadata"]));
    }
}
