//! How remote (TCP + TLS) callers are named in the policy: the names on
//! their client certificates, and the sha256 of their bearer tokens. The
//! daemon's config says how TLS is served; the policy says who is who.

use schemars::JsonSchema;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use subtle::ConstantTimeEq;
use toml::Spanned;

/// `[agents.remote]`: callers over the TLS listener that are this agent.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteSpec {
    /// A caller whose verified client certificate carries one of these
    /// names (a DNS subject alternative name, or else the subject's common
    /// name) is this agent. DNS names compare case-insensitively.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub tls_names: Vec<Spanned<String>>,
    /// sha256 (64 hex digits) of the bearer tokens that are this agent.
    /// Several may be listed, so a token can be rotated without downtime:
    /// add the new one, reload, move the workers over, remove the old one.
    #[serde(default)]
    #[schemars(with = "Vec<String>", regex(pattern = r"^[0-9a-fA-F]{64}$"))]
    pub token_sha256: Vec<Spanned<String>>,
}

/// Compiled from every agent's `[agents.remote]`.
#[derive(Debug, Default)]
pub struct RemoteIdentities {
    by_tls_name: HashMap<String, String>,
    tokens: Vec<([u8; 32], String)>,
}

/// The sha256 a token is stored as.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl RemoteIdentities {
    pub fn add_tls_name(&mut self, name: &str, agent: &str) -> Result<(), String> {
        if name.is_empty() {
            return Err(format!(
                "agent \"{agent}\": remote.tls_names has an empty name"
            ));
        }
        use std::collections::hash_map::Entry;
        match self.by_tls_name.entry(name.to_ascii_lowercase()) {
            Entry::Occupied(other) => Err(format!(
                "certificate name \"{name}\" already maps to agent \"{}\"; a caller must map to exactly one agent",
                other.get()
            )),
            Entry::Vacant(slot) => {
                slot.insert(agent.to_string());
                Ok(())
            }
        }
    }

    pub fn add_token_sha256(&mut self, hex_digest: &str, agent: &str) -> Result<(), String> {
        let mut digest = [0u8; 32];
        if hex_digest.len() != 64 || hex::decode_to_slice(hex_digest, &mut digest).is_err() {
            return Err(format!(
                "agent \"{agent}\": remote.token_sha256 entries are 64 hex digits (the sha256 of the \
                 token, e.g. `printf %s \"$TOKEN\" | sha256sum`), never the token itself"
            ));
        }
        if let Some((_, other)) = self.tokens.iter().find(|(d, _)| *d == digest) {
            return Err(format!(
                "this token hash already maps to agent \"{other}\"; a token must map to exactly one agent"
            ));
        }
        self.tokens.push((digest, agent.to_string()));
        Ok(())
    }

    /// The agent a verified certificate's names map to. Names that map to
    /// two different agents name none (fail closed).
    pub fn agent_for_cert_names(&self, names: &[String]) -> Result<Option<&str>, String> {
        let mut found: Option<&str> = None;
        for name in names {
            if let Some(agent) = self.by_tls_name.get(&name.to_ascii_lowercase()) {
                match found {
                    Some(f) if f != agent => {
                        return Err(format!(
                            "the client certificate's names map to two agents (\"{f}\" and \"{agent}\")"
                        ));
                    }
                    _ => found = Some(agent),
                }
            }
        }
        Ok(found)
    }

    /// The agent a token's digest maps to. Every stored digest is compared
    /// in constant time, so timing tells nothing about which one was close.
    pub fn agent_for_token_digest(&self, digest: &[u8; 32]) -> Option<&str> {
        let mut found = None;
        for (stored, agent) in &self.tokens {
            if bool::from(stored.ct_eq(digest)) {
                found = Some(agent.as_str());
            }
        }
        found
    }

    pub fn is_empty(&self) -> bool {
        self.by_tls_name.is_empty() && self.tokens.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_map_by_digest_and_several_per_agent() {
        let mut ids = RemoteIdentities::default();
        ids.add_token_sha256(&hex::encode(token_digest("old")), "a")
            .unwrap();
        ids.add_token_sha256(&hex::encode(token_digest("new")), "a")
            .unwrap();
        assert_eq!(ids.agent_for_token_digest(&token_digest("old")), Some("a"));
        assert_eq!(ids.agent_for_token_digest(&token_digest("new")), Some("a"));
        assert_eq!(ids.agent_for_token_digest(&token_digest("other")), None);
    }

    #[test]
    fn a_raw_token_or_a_duplicate_is_refused() {
        let mut ids = RemoteIdentities::default();
        assert!(ids.add_token_sha256("not-a-digest", "a").is_err());
        let d = hex::encode(token_digest("t"));
        ids.add_token_sha256(&d, "a").unwrap();
        assert!(ids.add_token_sha256(&d, "b").unwrap_err().contains("\"a\""));
    }

    #[test]
    fn certificate_names_are_case_insensitive_and_unambiguous() {
        let mut ids = RemoteIdentities::default();
        ids.add_tls_name("Worker-1.example", "a").unwrap();
        ids.add_tls_name("w2", "b").unwrap();
        assert!(ids.add_tls_name("worker-1.EXAMPLE", "b").is_err());
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            ids.agent_for_cert_names(&names(&["worker-1.example"])),
            Ok(Some("a"))
        );
        assert_eq!(ids.agent_for_cert_names(&names(&["nobody"])), Ok(None));
        assert!(
            ids.agent_for_cert_names(&names(&["worker-1.example", "w2"]))
                .is_err()
        );
    }
}
