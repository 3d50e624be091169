//! Roles: named sets of tools, defined once (`[roles.NAME] tools = [...]`)
//! and given to agents (`roles = [...]`). An agent with roles may call only
//! the tools of its roles; an agent without roles may call every tool (its
//! file globs and command policy still decide the rest). `WhoAmI` is always
//! allowed: a caller must be able to find out who it is.

use crate::error::{Reason, ToolError};
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::sync::Arc;
use toml::Spanned;

/// Every tool a role can grant, by its RPC name.
pub const TOOLS: &[&str] = &[
    "ReadFile",
    "WriteFile",
    "EditFile",
    "ListDir",
    "Glob",
    "Grep",
    "Stat",
    "MakeDir",
    "Move",
    "Remove",
    "Exec",
    "Run",
];

/// `[roles.NAME]`: the tools this role may call, and default limits for
/// the agents given it (an agent's own key wins).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    /// RPC names (`ReadFile`, `ListDir`, `Glob`, `Grep`, `Stat`,
    /// `WriteFile`, `EditFile`, `MakeDir`, `Move`, `Remove`, `Exec`, `Run`),
    /// or `"*"` for all of them.
    #[schemars(with = "Vec<String>")]
    pub tools: Vec<Spanned<String>>,
    /// Default calls per second for the role's agents.
    pub rate_limits: Option<super::ratelimit::RateLimitSpec>,
    /// Default calls running at once for the role's agents.
    pub concurrency: Option<super::budget::ConcurrencySpec>,
    /// Default budgets for the role's agents.
    pub budgets: Option<super::budget::BudgetSpec>,
}

/// A compiled role.
#[derive(Debug, Clone)]
pub struct Role {
    pub tools: BTreeSet<&'static str>,
    /// `file:line` of its definition, for rule names.
    pub location: String,
    /// Default limits for its agents.
    pub limits: super::effective::LimitSettings,
}

impl Role {
    /// Checks a role's tool names; an error names the bad one and the
    /// valid ones.
    pub fn compile(name: &str, spec: &RoleSpec, location: String) -> Result<Role, (usize, String)> {
        let mut tools = BTreeSet::new();
        for tool in &spec.tools {
            let t = tool.get_ref().as_str();
            if t == "*" {
                tools.extend(TOOLS.iter().copied());
            } else if let Some(known) = TOOLS.iter().find(|k| **k == t) {
                tools.insert(*known);
            } else {
                return Err((
                    tool.span().start,
                    format!(
                        "role \"{name}\": unknown tool \"{t}\"; tools are {} (or \"*\")",
                        TOOLS.join(", ")
                    ),
                ));
            }
        }
        let limits = super::effective::LimitSettings::from_specs(
            spec.rate_limits.as_ref(),
            spec.concurrency.as_ref(),
            spec.budgets.as_ref(),
        );
        Ok(Role {
            tools,
            location,
            limits,
        })
    }
}

/// Which tools an agent may call, with the rule that says so.
#[derive(Debug, Clone)]
pub struct ToolGrant {
    /// None: no roles, every tool.
    tools: Option<BTreeSet<&'static str>>,
    /// The rule that refuses a tool outside the roles, e.g.
    /// `ci: roles ["reviewer" (roles.toml:3)]`.
    rule: Arc<str>,
}

impl Default for ToolGrant {
    fn default() -> Self {
        ToolGrant {
            tools: None,
            rule: Arc::from("no roles: every tool"),
        }
    }
}

impl ToolGrant {
    /// The union of `roles` (already resolved) for `agent`.
    pub fn from_roles(agent: &str, roles: &[(String, Role)]) -> ToolGrant {
        if roles.is_empty() {
            return ToolGrant {
                tools: None,
                rule: Arc::from(format!("{agent}: no roles (every tool)")),
            };
        }
        let names: Vec<String> = roles
            .iter()
            .map(|(n, r)| format!("\"{n}\" ({})", r.location))
            .collect();
        ToolGrant {
            tools: Some(
                roles
                    .iter()
                    .flat_map(|(_, r)| r.tools.iter().copied())
                    .collect(),
            ),
            rule: Arc::from(format!("{agent}: roles [{}]", names.join(", "))),
        }
    }

    pub fn allows(&self, tool: &str) -> bool {
        tool == "WhoAmI" || self.tools.as_ref().is_none_or(|t| t.contains(tool))
    }

    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// The tools granted, in name order (all of them without roles).
    pub fn tools(&self) -> Vec<&'static str> {
        match &self.tools {
            Some(t) => t.iter().copied().collect(),
            None => TOOLS.to_vec(),
        }
    }

    /// The daemon's check before any other: a tool outside the agent's
    /// roles is PERMISSION_DENIED with reason TOOL_NOT_ALLOWED.
    pub fn check(&self, agent: &str, tool: &str) -> Result<(), ToolError> {
        if self.allows(tool) {
            return Ok(());
        }
        Err(ToolError::new(
            Reason::ToolNotAllowed,
            format!(
                "policy rule `{}` does not allow agent \"{agent}\" to call {tool}; it may call {}; \
                 ask the operator for a role that grants {tool}",
                self.rule,
                self.tools().join(", ")
            ),
        )
        .with("rule", self.rule.to_string())
        .with("tool", tool))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(tools: &[&str]) -> Result<Role, (usize, String)> {
        let text = format!(
            "tools = [{}]",
            tools
                .iter()
                .map(|t| format!("{t:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let spec: RoleSpec = toml::from_str(&text).unwrap();
        Role::compile("r", &spec, "roles.toml:1".into())
    }

    #[test]
    fn a_reviewer_reads_but_does_not_write() {
        let reviewer = role(&["ReadFile", "ListDir", "Glob", "Grep", "Stat"]).unwrap();
        let grant = ToolGrant::from_roles("a", &[("reviewer".into(), reviewer)]);
        assert!(grant.allows("ReadFile") && grant.allows("WhoAmI"));
        let e = grant.check("a", "WriteFile").unwrap_err();
        assert_eq!(e.reason, Reason::ToolNotAllowed);
        assert!(
            e.metadata_value("rule")
                .unwrap()
                .contains("\"reviewer\" (roles.toml:1)")
        );
    }

    #[test]
    fn no_roles_allows_everything_and_star_is_every_tool() {
        let grant = ToolGrant::from_roles("a", &[]);
        assert!(TOOLS.iter().all(|t| grant.allows(t)));
        assert_eq!(role(&["*"]).unwrap().tools.len(), TOOLS.len());
    }

    #[test]
    fn an_unknown_tool_is_an_error_listing_the_valid_ones() {
        let e = role(&["ReadFiles"]).unwrap_err().1;
        assert!(
            e.contains("\"ReadFiles\"") && e.contains("ReadFile, WriteFile"),
            "{e}"
        );
    }
}
