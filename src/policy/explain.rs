//! `policy explain` and `policy test`: a request decided by the compiled
//! policy exactly as the daemon decides it (`FileRules::check`,
//! `ShellPolicy::check_argv`/`check_shell`/`disallowed_env`), with the rule
//! that decided and the rules that nearly did.
//!
//! File decisions are policy-only: the path is normalised lexically and
//! never resolved on this host (no symlinks, no existence check). Programs
//! are resolved on this host's copies of the sandbox `PATH` directories, as
//! the daemon does.

use super::compile::{AgentPolicy, CompiledPolicy, WorkspaceRules};
use super::decide::{Access, Decision, RuleSet};
use super::shell::ShellPolicy;
use std::fmt;
use std::path::Path;

/// One tool request, as `policy explain` and case files give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A file tool reading a path (a trailing `/` means a directory).
    Read(String),
    /// A file tool writing a path.
    Write(String),
    /// `Exec`/`Run` with an argv.
    Exec(Vec<String>),
    /// `Exec`/`Run` with a shell string.
    Shell(String),
    /// A request setting this environment variable.
    Env(String),
    /// A call of this tool (RPC name), as the agent's roles decide it.
    Tool(String),
    /// Opening a session (`[agents.sessions]`).
    Session,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Read(p) => write!(f, "read {p:?}"),
            Request::Write(p) => write!(f, "write {p:?}"),
            Request::Exec(argv) => write!(f, "exec {argv:?}"),
            Request::Shell(s) => write!(f, "shell {s:?}"),
            Request::Env(n) => write!(f, "env {n:?}"),
            Request::Tool(t) => write!(f, "call {t}"),
            Request::Session => write!(f, "open a session"),
        }
    }
}

/// A rule that took part in (or nearly made) a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Related {
    /// What it did: "overridden", "also denies", "no match", ...
    pub label: &'static str,
    /// The rule's name, with its `file:line`.
    pub rule: String,
    /// Extra detail, e.g. which ancestor it matched.
    pub detail: Option<String>,
}

/// A decision with the reasons around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub allowed: bool,
    /// The rule that decided, with its `file:line` when it is written in a
    /// policy file.
    pub rule: String,
    /// What the deciding rule matched (e.g. an ancestor directory).
    pub matched: Option<String>,
    /// The request, with the agent and workspace it was decided for.
    pub subject: String,
    pub related: Vec<Related>,
    pub notes: Vec<String>,
}

/// A request that cannot be decided: unknown agent or workspace, bad path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainError(pub String);

impl fmt::Display for ExplainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExplainError {}

/// Note printed with every file decision.
pub const POLICY_ONLY_NOTE: &str = "policy only: the path was normalised lexically, not resolved on \
     this host; the daemon also checks the path a request resolves to (symlinks), and a deny \
     glob holds for either name";

/// Decides `request` for `agent` (in `workspace`, or the agent's first).
pub fn explain(
    policy: &CompiledPolicy,
    agent: &str,
    workspace: Option<&str>,
    request: &Request,
) -> Result<Explanation, ExplainError> {
    let Some(agent_policy) = policy.agent(agent) else {
        let mut known: Vec<&str> = policy.agents.keys().map(String::as_str).collect();
        known.sort_unstable();
        return Err(ExplainError(format!(
            "no agent \"{agent}\" in the policy (agents: {})",
            known.join(", ")
        )));
    };
    if let Some(refused) = refused_by_roles(agent_policy, request)? {
        return Ok(refused);
    }
    match request {
        Request::Tool(_) => unreachable!("decided by refused_by_roles"),
        Request::Read(path) => explain_file(agent_policy, workspace, Access::Read, path, request),
        Request::Write(path) => explain_file(agent_policy, workspace, Access::Write, path, request),
        Request::Exec(argv) => {
            if argv.is_empty() || argv[0].is_empty() {
                return Err(ExplainError(
                    "exec needs a program and its arguments".into(),
                ));
            }
            let subject = subject(agent_policy, None, request);
            Ok(match &agent_policy.shell {
                Some(shell) => explain_exec(shell, argv, subject),
                None => no_shell(agent_policy, subject),
            })
        }
        Request::Shell(command) => {
            let subject = subject(agent_policy, None, request);
            Ok(match &agent_policy.shell {
                Some(shell) => explain_shell(shell, command, subject),
                None => no_shell(agent_policy, subject),
            })
        }
        Request::Env(name) => {
            let subject = subject(agent_policy, None, request);
            Ok(match &agent_policy.shell {
                Some(shell) => explain_env(shell, name, subject),
                None => no_shell(agent_policy, subject),
            })
        }
        Request::Session => {
            let subject = subject(agent_policy, None, request);
            Ok(match &agent_policy.shell {
                Some(_) => explain_session(agent_policy, subject),
                None => no_shell(agent_policy, subject),
            })
        }
    }
}

/// Whether the agent may open sessions, and the limits they get.
fn explain_session(agent: &AgentPolicy, subject: String) -> Explanation {
    let s = agent.sessions;
    let rule = if s.allowed {
        format!("{}: shell (sessions)", agent.name)
    } else {
        format!("{}: sessions.allowed = false", agent.name)
    };
    Explanation {
        allowed: s.allowed,
        rule,
        matched: None,
        subject,
        related: Vec::new(),
        notes: vec![
            format!("at most {} sessions open at once", s.max_sessions),
            format!(
                "each lives at most {} and closes after {} without a call",
                humantime::format_duration(s.max_lifetime),
                humantime::format_duration(s.idle_timeout)
            ),
            format!(
                "at most {} background processes running in one",
                s.max_processes
            ),
            "memory and pids: the [agents.shell.limits], for the whole session".into(),
        ],
    }
}

/// The roles decide first: a tool call outright, and a file or command
/// request when the agent's roles grant none of the tools that make it.
fn refused_by_roles(
    agent: &AgentPolicy,
    request: &Request,
) -> Result<Option<Explanation>, ExplainError> {
    let grant = &agent.tools;
    let family: &[&str] = match request {
        Request::Tool(tool) => {
            if tool != "WhoAmI" && !crate::policy::roles::TOOLS.contains(&tool.as_str()) {
                return Err(ExplainError(format!(
                    "unknown tool \"{tool}\"; tools are {}",
                    crate::policy::roles::TOOLS.join(", ")
                )));
            }
            let allowed = grant.allows(tool);
            return Ok(Some(Explanation {
                allowed,
                rule: grant.rule().to_string(),
                matched: None,
                subject: subject(agent, None, request),
                related: Vec::new(),
                notes: vec![format!("tools it may call: {}", grant.tools().join(", "))],
            }));
        }
        Request::Read(_) => &["ReadFile", "ListDir", "Glob", "Grep", "Stat"],
        Request::Write(_) => &["WriteFile", "EditFile", "MakeDir", "Move", "Remove"],
        Request::Exec(_) | Request::Shell(_) | Request::Env(_) => &["Exec", "Run"],
        // Session calls need Run (src/server/sessions.rs).
        Request::Session => &["Run"],
    };
    if family.iter().any(|t| grant.allows(t)) {
        return Ok(None);
    }
    Ok(Some(Explanation {
        allowed: false,
        rule: grant.rule().to_string(),
        matched: None,
        subject: subject(agent, None, request),
        related: Vec::new(),
        notes: vec![format!(
            "its roles grant none of {}; tools it may call: {}",
            family.join(", "),
            grant.tools().join(", ")
        )],
    }))
}

fn subject(agent: &AgentPolicy, ws: Option<&WorkspaceRules>, request: &Request) -> String {
    match ws {
        Some(ws) => format!(
            "{request} for agent \"{}\" in workspace \"{}\" ({}{})",
            agent.name,
            ws.name,
            ws.path.display(),
            if ws.read_only { ", read-only" } else { "" }
        ),
        None => format!("{request} for agent \"{}\"", agent.name),
    }
}

/// The denial the daemon gives an agent without an `[agents.shell]` table.
fn no_shell(agent: &AgentPolicy, subject: String) -> Explanation {
    Explanation {
        allowed: false,
        // As the daemon names it (src/shell/mod.rs).
        rule: format!("{}: no [agents.shell] table", agent.name),
        matched: None,
        subject,
        related: Vec::new(),
        notes: vec!["without an [agents.shell] table an agent may run no command".into()],
    }
}

/// Lexically normalises a workspace path: `/`-separated, no `.` or empty
/// components, `..` resolved (and refused when it leaves the root). An
/// absolute path in a form the file tools accept (`/workspace/…`, or under
/// the workspace's host path) is made relative as they make it.
pub fn normalize_path(path: &str, root: &Path) -> Result<String, ExplainError> {
    if path.contains('\0') {
        return Err(ExplainError("the path contains a NUL byte".into()));
    }
    let relative = if path.starts_with('/') {
        match crate::fs::workspace_relative(path, root) {
            Some(rest) => rest,
            None => {
                return Err(ExplainError(format!(
                    "\"{path}\" is absolute and not inside the workspace ({} on the host, {} \
                     in commands); give a path relative to the workspace root",
                    root.display(),
                    crate::shell::WORKSPACE_MOUNT
                )));
            }
        }
    } else {
        path.to_string()
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(ExplainError(format!(
                        "\"{path}\" leaves the workspace (PATH_OUTSIDE_WORKSPACE)"
                    )));
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// The indices of the rules in `set` that match `text`, in file order.
pub(crate) fn matching(set: &RuleSet, text: &str) -> Vec<usize> {
    if set.is_empty() {
        return Vec::new();
    }
    let mut hits = set.set.matches(text);
    hits.sort_unstable();
    hits
}

/// `path`, then its ancestors from the nearest up (as deny is checked).
fn self_and_ancestors(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    if path.is_empty() {
        return out;
    }
    out.push(path);
    let mut end = path.len();
    while let Some(slash) = path[..end].rfind('/') {
        end = slash;
        out.push(&path[..end]);
    }
    out
}

/// For each deny rule, the first of `path` and its ancestors it matches.
fn deny_hits(deny: &RuleSet, path: &str) -> Vec<(usize, String)> {
    let mut hits: Vec<(usize, String)> = Vec::new();
    for p in self_and_ancestors(path) {
        for i in matching(deny, p) {
            if !hits.iter().any(|(j, _)| *j == i) {
                hits.push((i, p.to_string()));
            }
        }
    }
    hits
}

fn where_matched(path: &str, hit: &str) -> String {
    if hit == path {
        format!("the path \"{path}\" itself")
    } else {
        format!("the parent directory \"{hit}\" of \"{path}\"")
    }
}

fn explain_file(
    agent: &AgentPolicy,
    workspace: Option<&str>,
    access: Access,
    path: &str,
    request: &Request,
) -> Result<Explanation, ExplainError> {
    let ws = match workspace {
        None | Some("") => agent.workspace_rules.first(),
        Some(name) => agent.workspace_rules.iter().find(|w| w.name == name),
    };
    let Some(ws) = ws else {
        let names: Vec<&str> = agent
            .workspace_rules
            .iter()
            .map(|w| w.name.as_str())
            .collect();
        return Err(ExplainError(format!(
            "agent \"{}\" has no workspace \"{}\" (workspaces: {})",
            agent.name,
            workspace.unwrap_or(""),
            names.join(", ")
        )));
    };
    let is_dir = access == Access::Read && (path.ends_with('/') || path == "." || path.is_empty());
    let norm = normalize_path(path, &ws.path)?;
    let rules = &ws.rules;
    let decision: Decision = rules.check(access, &norm, is_dir);
    let (allow_set, allow_key) = match access {
        Access::Read => (&rules.read, "files.read"),
        Access::Write => (&rules.write, "files.write"),
    };
    let denies = deny_hits(&rules.deny, &norm);
    let allows = matching(allow_set, &norm);
    let mut related = Vec::new();
    let mut matched = None;
    let mut notes = vec![POLICY_ONLY_NOTE.to_string()];
    if norm != path.trim_end_matches('/') {
        notes.push(format!("\"{path}\" was normalised to \"{norm}\""));
    }
    let denied_by_glob = denies
        .first()
        .map(|(i, _)| rules.deny.rules[*i].as_ref() == decision.rule.as_ref())
        .unwrap_or(false);
    if !decision.allowed && denied_by_glob {
        // The deny glob that decided, and what else agrees or was overridden.
        let (_, hit) = &denies[0];
        matched = Some(where_matched(&norm, hit));
        for (i, hit) in denies.iter().skip(1) {
            related.push(Related {
                label: "also denies",
                rule: rules.deny.rules[*i].to_string(),
                detail: Some(format!("matches {}", where_matched(&norm, hit))),
            });
        }
        if is_dir {
            related.push(Related {
                label: "overridden",
                rule: rules.directory_rule.to_string(),
                detail: Some("but the deny wins".into()),
            });
        }
        for i in &allows {
            if !is_dir {
                related.push(Related {
                    label: "overridden",
                    rule: allow_set.rules[*i].to_string(),
                    detail: Some("matches, but the deny wins".into()),
                });
            }
        }
        if !is_dir && allows.is_empty() {
            notes.push(format!(
                "no {allow_key} glob matches either: without the deny it would still be denied"
            ));
        }
    } else {
        // Not denied by a glob: every deny glob was checked and missed.
        for rule in &rules.deny.rules {
            related.push(Related {
                label: "no match",
                rule: rule.to_string(),
                detail: None,
            });
        }
        if !rules.deny.is_empty() {
            notes.push(
                "no files.deny glob matches the path or any of its parent directories".into(),
            );
        }
        if decision.allowed && !is_dir {
            matched = Some(format!("the path \"{norm}\""));
            for i in allows.iter().skip(1) {
                related.push(Related {
                    label: "also allows",
                    rule: allow_set.rules[*i].to_string(),
                    detail: Some("matches too (the first in file order is named)".into()),
                });
            }
        } else if is_dir {
            notes.push(
                "directories may be traversed and listed unless denied; a listing shows only \
                 the entries the policy lets the agent see"
                    .into(),
            );
        } else if access == Access::Write && rules.is_read_only() {
            for i in &allows {
                related.push(Related {
                    label: "overridden",
                    rule: allow_set.rules[*i].to_string(),
                    detail: Some("matches, but the workspace is read-only".into()),
                });
            }
        } else {
            // No allow glob matched: they are the near misses.
            for rule in &allow_set.rules {
                related.push(Related {
                    label: "no match",
                    rule: rule.to_string(),
                    detail: None,
                });
            }
            if allow_set.is_empty() {
                notes.push(format!(
                    "{allow_key} is empty: nothing may be allowed by it"
                ));
            }
        }
    }
    if !is_dir && access == Access::Read && !path.ends_with('/') {
        notes.push("decided as a file; end the path with `/` to decide listing a directory".into());
    }
    Ok(Explanation {
        allowed: decision.allowed,
        rule: decision.rule.to_string(),
        matched,
        subject: subject(agent, Some(ws), request),
        related,
        notes,
    })
}

fn explain_exec(shell: &ShellPolicy, argv: &[String], subject: String) -> Explanation {
    let mut related = Vec::new();
    let mut notes = vec![format!(
        "programs are resolved on this host's copies of the sandbox PATH {:?}, as the daemon \
         does; on another host the result may differ",
        shell.path
    )];
    let mut matched = None;
    let (allowed, rule) = match shell.check_argv(argv) {
        Ok(allowed) => {
            matched = Some(format!("program {}", allowed.program.display()));
            if let Some(cmd) = shell.commands.iter().find(|c| c.rule == allowed.rule) {
                for glob in &cmd.deny_args.rules {
                    related.push(Related {
                        label: "no match",
                        rule: glob.to_string(),
                        detail: Some("matches no argument".into()),
                    });
                }
            }
            if shell.allow_shell || is_interpreter(&argv[0]) {
                notes.push(
                    "the command list is a first gate, not the boundary: a shell or interpreter \
                     runs anything; the sandbox is what holds"
                        .into(),
                );
            }
            (true, allowed.rule.to_string())
        }
        Err(decision) => {
            let cmd = shell.commands.iter().find(|c| {
                c.deny_args
                    .rules
                    .iter()
                    .any(|r| r.as_ref() == decision.rule.as_ref())
            });
            if let Some(cmd) = cmd {
                let hit = argv[1..]
                    .iter()
                    .find(|a| cmd.deny_args.first_match(a) == Some(&decision.rule));
                if let Some(arg) = hit {
                    matched = Some(format!("the argument {arg:?}"));
                }
                related.push(Related {
                    label: "overridden",
                    rule: cmd.rule.to_string(),
                    detail: Some("allows the program, but a deny_args glob matched".into()),
                });
                for (i, glob) in cmd.deny_args.rules.iter().enumerate() {
                    if glob.as_ref() == decision.rule.as_ref() {
                        continue;
                    }
                    let hits: Vec<&String> = argv[1..]
                        .iter()
                        .filter(|a| matching(&cmd.deny_args, a).contains(&i))
                        .collect();
                    related.push(if hits.is_empty() {
                        Related {
                            label: "no match",
                            rule: glob.to_string(),
                            detail: Some("matches no argument".into()),
                        }
                    } else {
                        Related {
                            label: "also denies",
                            rule: glob.to_string(),
                            detail: Some(format!("matches {:?}", hits[0])),
                        }
                    });
                }
            } else {
                // Not allowed at all: the entries are the near misses.
                let wanted = Path::new(&argv[0])
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                for c in &shell.commands {
                    let same_name = Path::new(&c.program)
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy() == wanted);
                    let target = match &c.resolved {
                        Some(p) => format!("resolves to {}", p.display()),
                        None => "not found on this host".into(),
                    };
                    related.push(Related {
                        label: "no match",
                        rule: c.rule.to_string(),
                        detail: Some(if same_name {
                            format!("same name, but {target}")
                        } else {
                            target
                        }),
                    });
                }
            }
            (false, decision.rule.to_string())
        }
    };
    Explanation {
        allowed,
        rule,
        matched,
        subject,
        related,
        notes,
    }
}

fn explain_shell(shell: &ShellPolicy, command: &str, subject: String) -> Explanation {
    match shell.check_shell(command) {
        Ok(allowed) => Explanation {
            allowed: true,
            rule: allowed.rule.to_string(),
            matched: None,
            subject,
            related: Vec::new(),
            notes: vec![
                "the string runs as /bin/sh -c; shell.commands and deny_args are not applied to \
                 it: the sandbox is the boundary"
                    .into(),
            ],
        },
        Err(decision) => Explanation {
            allowed: false,
            rule: decision.rule.to_string(),
            matched: None,
            subject,
            related: vec![Related {
                label: "setting",
                rule: shell.shell_rule.to_string(),
                detail: Some("allow_shell = false".into()),
            }],
            notes: vec!["give an argv instead (--exec), decided by shell.commands".into()],
        },
    }
}

fn explain_env(shell: &ShellPolicy, name: &str, subject: String) -> Explanation {
    let hits = matching(&shell.env_allow, name);
    let names = std::iter::once(name.to_string()).collect::<Vec<_>>();
    let allowed = shell.disallowed_env(names.iter()).is_none();
    let mut related = Vec::new();
    let rule = if allowed {
        for i in hits.iter().skip(1) {
            related.push(Related {
                label: "also allows",
                rule: shell.env_allow.rules[*i].to_string(),
                detail: None,
            });
        }
        shell.env_allow.rules[hits[0]].to_string()
    } else {
        for r in &shell.env_allow.rules {
            related.push(Related {
                label: "no match",
                rule: r.to_string(),
                detail: None,
            });
        }
        // As the daemon names it (src/shell/env.rs).
        format!("{}: no shell.env glob matches", shell.agent)
    };
    Explanation {
        allowed,
        rule,
        matched: allowed.then(|| format!("the name {name:?}")),
        subject,
        related,
        notes: Vec::new(),
    }
}

/// Programs that run whatever they are given: with one of them allowed the
/// command list no longer limits what runs.
pub fn is_interpreter(program: &str) -> bool {
    let name = Path::new(program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    matches!(
        base,
        "sh" | "bash"
            | "dash"
            | "zsh"
            | "ksh"
            | "mksh"
            | "fish"
            | "csh"
            | "tcsh"
            | "busybox"
            | "env"
            | "xargs"
            | "nohup"
            | "timeout"
            | "nice"
            | "python"
            | "perl"
            | "ruby"
            | "node"
            | "nodejs"
            | "deno"
            | "bun"
            | "php"
            | "lua"
            | "tclsh"
            | "awk"
            | "gawk"
            | "mawk"
    )
}

/// Prints an explanation for people.
pub fn render(e: &Explanation) -> String {
    let mut out = String::new();
    let verdict = if e.allowed { "allow" } else { "deny" };
    out.push_str(&format!("decision: {verdict}\n"));
    out.push_str(&format!("request:  {}\n", e.subject));
    out.push_str(&format!("rule:     {}\n", e.rule));
    if let Some(m) = &e.matched {
        out.push_str(&format!("matched:  {m}\n"));
    }
    if !e.related.is_empty() {
        out.push_str("related rules:\n");
        let width = e.related.iter().map(|r| r.label.len()).max().unwrap_or(0);
        for r in &e.related {
            out.push_str(&format!("  {:<width$}  {}", r.label, r.rule));
            if let Some(d) = &r.detail {
                out.push_str(&format!(": {d}"));
            }
            out.push('\n');
        }
    }
    for n in &e.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

/// Shared by the tools: a decided request's verdict word.
pub fn verdict(allowed: bool) -> &'static str {
    if allowed { "allow" } else { "deny" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_lexically() {
        let root = Path::new("/w");
        assert_eq!(normalize_path("./a//b/../c", root).unwrap(), "a/c");
        assert_eq!(normalize_path("/w/src/x", root).unwrap(), "src/x");
        assert_eq!(normalize_path("/workspace/src/x", root).unwrap(), "src/x");
        assert!(normalize_path("/workspace/../etc", root).is_err());
        assert!(normalize_path("/workspacex/a", root).is_err());
        assert!(normalize_path("/w-evil/a", root).is_err());
        assert!(normalize_path("../x", root).is_err());
        assert!(normalize_path("/etc/passwd", root).is_err());
        assert_eq!(normalize_path("dir/", root).unwrap(), "dir");
    }

    #[test]
    fn ancestors_nearest_first() {
        assert_eq!(self_and_ancestors("a/b/c"), vec!["a/b/c", "a/b", "a"]);
        assert!(self_and_ancestors("").is_empty());
    }

    #[test]
    fn interpreters() {
        assert!(is_interpreter("python3.12"));
        assert!(is_interpreter("/bin/bash"));
        assert!(!is_interpreter("git"));
        assert!(!is_interpreter("cargo"));
    }
}
