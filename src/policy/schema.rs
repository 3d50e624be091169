//! The JSON Schema of a policy file, generated from the serde types the
//! daemon parses (`model.rs`), so editors validate and complete exactly what
//! the daemon accepts. `policies/agentjail-policy.schema.json` is this
//! output, checked in; a test fails when it is out of date.

use super::model::PolicyFile;

/// Where the schema is checked in, relative to the repository root.
pub const SCHEMA_PATH: &str = "policies/agentjail-policy.schema.json";

/// The schema as a value (draft-07: the draft TOML editors support best).
pub fn policy_schema() -> schemars::Schema {
    use schemars::transform::{RecursiveTransform, Transform};
    let mut schema = schemars::generate::SchemaSettings::draft07()
        .for_deserialize()
        .into_generator()
        .into_root_schema_for::<PolicyFile>();
    schema.insert("title".into(), "agentjail policy file".into());
    RecursiveTransform(no_null).transform(&mut schema);
    schema
}

/// TOML has no null: an optional key is simply left out. Drops the `null`
/// alternatives and `"default": null` that schemars gives `Option<T>`.
fn no_null(schema: &mut schemars::Schema) {
    if schema.get("default").is_some_and(|d| d.is_null()) {
        schema.remove("default");
    }
    let types = schema.get("type").and_then(|t| t.as_array()).map(|types| {
        types
            .iter()
            .filter(|t| t.as_str() != Some("null"))
            .cloned()
            .collect::<Vec<_>>()
    });
    if let Some(mut types) = types {
        if types.len() == 1 {
            schema.insert("type".into(), types.remove(0));
        } else {
            schema.insert("type".into(), types.into());
        }
    }
    let any_of = schema.get("anyOf").and_then(|a| a.as_array()).map(|alts| {
        alts.iter()
            .filter(|a| a.get("type").and_then(|t| t.as_str()) != Some("null"))
            .cloned()
            .collect::<Vec<_>>()
    });
    if let Some(alts) = any_of {
        if alts.len() == 1 {
            // `$ref` with siblings (a description) is ignored in draft-07.
            schema.remove("anyOf");
            schema.insert("allOf".into(), alts.into());
        } else {
            schema.insert("anyOf".into(), alts.into());
        }
    }
}

/// The schema as pretty-printed JSON with a final newline, as checked in.
pub fn schema_json() -> String {
    format!("{:#}\n", policy_schema().as_value())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_describes_the_model() {
        let json = schema_json();
        for key in [
            "agents",
            "workspaces",
            "deny_args",
            "allow_shell",
            "max_read_bytes",
            "landlock_abi",
            "read-only",
            "additionalProperties",
        ] {
            assert!(json.contains(&format!("\"{key}\"")), "{key} missing");
        }
        assert!(!json.contains("null"), "TOML has no null:\n{json}");
    }
}
