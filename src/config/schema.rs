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

/// The schema rendered as the checked-in file: pretty JSON with a final newline.
pub fn json_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&json_schema()).expect("a schema serializes");
    text.push('\n');
    text
}
