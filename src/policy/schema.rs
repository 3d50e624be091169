//! The JSON Schema of a policy file, generated from the serde types the
//! daemon parses (`model.rs`), so editors validate and complete exactly what
//! the daemon accepts. `policies/agentjail-policy.schema.json` is this
//! output, checked in; a test fails when it is out of date.

use super::model::PolicyFile;

/// Where the schema is checked in, relative to the repository root.
pub const SCHEMA_PATH: &str = "policies/agentjail-policy.schema.json";

/// The schema as a value (draft-07: the draft TOML editors support best).
pub fn policy_schema() -> schemars::Schema {
    let mut schema = schemars::generate::SchemaSettings::draft07()
        .for_deserialize()
        .into_generator()
        .into_root_schema_for::<PolicyFile>();
    schema.insert("title".into(), "agentjail policy file".into());
    schema
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
    }
}
