//! Lint for `policy check`: grants that are valid but dangerous, reported as
//! `file:line:col: warning: ...`.
//!
//! - write access (file tools, or commands on a read-write workspace) to a
//!   workspace at `/`, `/etc`, a system directory or a home directory;
//! - `files.git = "read-write"` (commands and the file tools may then write
//!   hooks, config and nested repositories, which run programs as whoever
//!   next runs git there), and with it a write glob that lets the file tools
//!   write `.git/hooks/` or `.git/config` with no deny glob covering it;
//! - `shell.network = true` together with a shell (`allow_shell`, or a
//!   program in `shell.commands` that runs other programs);
//! - a read or write glob that matches nothing in the workspace, when every
//!   workspace of the agent exists on this host and was walked completely
//!   (deny globs are defensive and are not checked);
//! - `shell.uid` or `shell.gid` 0 (the sandbox refuses to run as root);
//! - a read or write glob that a deny glob fully shadows. This is decided
//!   from the globs' text and reported only when certain (see
//!   `shadowing_deny`); some shadowed globs go unreported, none is
//!   reported wrongly.

use super::compile::{build_globset_with, compile_glob, file_rules};
use super::decide::{Access, RuleSet};
use super::explain::{is_interpreter, matching};
use super::load::{LoadOptions, PolicyDiagnostic, line_col};
use super::model::{AgentSpec, GitAccess, PolicyFile, WorkspaceAccess};
use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use toml::Spanned;

/// Most entries walked per workspace for the unmatched-glob lint.
pub const WALK_LIMIT: usize = 50_000;

/// Warnings (dangerous grants) and notes (facts worth knowing).
#[derive(Debug, Default)]
pub struct LintReport {
    pub warnings: Vec<PolicyDiagnostic>,
    pub notes: Vec<PolicyDiagnostic>,
}

/// Lints policy sources that have already loaded without error.
pub fn lint_sources(sources: &[(PathBuf, String)], opts: &LoadOptions) -> LintReport {
    lint_sources_with_limit(sources, opts, WALK_LIMIT)
}

pub fn lint_sources_with_limit(
    sources: &[(PathBuf, String)],
    opts: &LoadOptions,
    walk_limit: usize,
) -> LintReport {
    let mut report = LintReport::default();
    let mut walks: HashMap<PathBuf, Option<Walk>> = HashMap::new();
    let parsed_all: Vec<_> = sources
        .iter()
        .filter_map(|(_, text)| toml::from_str::<PolicyFile>(text).ok())
        .collect();
    let used_roles: std::collections::HashSet<&str> = parsed_all
        .iter()
        .flat_map(|p| p.agents.iter().flat_map(|a| a.roles.iter()))
        .map(|r| r.get_ref().as_str())
        .collect();
    for (file, text) in sources {
        let Ok(parsed) = toml::from_str::<PolicyFile>(text) else {
            continue;
        };
        let mut ctx = Ctx {
            file,
            text,
            report: &mut report,
        };
        lint_roles(&parsed, &parsed_all, &used_roles, &mut ctx);
        for agent in &parsed.agents {
            lint_agent(agent, &mut ctx, opts, walk_limit, &mut walks);
            lint_sessions(agent, &mut ctx);
        }
    }
    report
}

/// Roles no agent is given, and roles that grant commands to an agent
/// that has no `[agents.shell]` (or a shell that its roles never let it use).
fn lint_roles(
    parsed: &PolicyFile,
    all: &[PolicyFile],
    used: &std::collections::HashSet<&str>,
    ctx: &mut Ctx<'_>,
) {
    for (name, role) in &parsed.roles {
        if !used.contains(name.as_str()) {
            ctx.note(
                &role.span(),
                format!("role \"{name}\" is given to no agent"),
            );
        }
    }
    let grants_commands = |roles: &[Spanned<String>]| {
        roles.iter().any(|r| {
            all.iter().any(|p| {
                p.roles.get(r.get_ref()).is_some_and(|spec| {
                    spec.get_ref()
                        .tools
                        .iter()
                        .any(|t| matches!(t.get_ref().as_str(), "Run" | "Exec" | "*"))
                })
            })
        })
    };
    for agent in &parsed.agents {
        if agent.roles.is_empty() {
            continue;
        }
        let commands = grants_commands(&agent.roles);
        let name = agent.name.get_ref();
        if commands && agent.shell.is_none() {
            ctx.note(
                &agent.roles[0].span(),
                format!(
                    "agent \"{name}\": its roles grant Run/Exec but it has no [agents.shell] \
                     table, so every command is refused"
                ),
            );
        } else if !commands && agent.shell.is_some() {
            ctx.note(
                &agent.roles[0].span(),
                format!(
                    "agent \"{name}\": it has an [agents.shell] table but its roles grant \
                     neither Run nor Exec"
                ),
            );
        }
    }
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    report: &'a mut LintReport,
}

impl Ctx<'_> {
    fn diag(&self, span: &Range<usize>, message: String) -> PolicyDiagnostic {
        let (line, col) = line_col(self.text, span.start);
        PolicyDiagnostic {
            file: self.file.to_path_buf(),
            line,
            col,
            message,
        }
    }
    fn warn(&mut self, span: &Range<usize>, message: String) {
        let d = self.diag(span, format!("warning: {message}"));
        self.report.warnings.push(d);
    }
    fn note(&mut self, span: &Range<usize>, message: String) {
        let d = self.diag(span, format!("note: {message}"));
        self.report.notes.push(d);
    }
    /// `file:line` of a span, as rule names give it.
    fn at(&self, span: &Range<usize>) -> String {
        super::load::rule_location(self.file, self.text, span)
    }
}

/// One glob of a list, with where it is written (empty span: a default).
struct Glob<'a> {
    key: &'static str,
    text: &'a str,
    span: Range<usize>,
}

fn globs<'a>(key: &'static str, list: &'a [Spanned<String>]) -> Vec<Glob<'a>> {
    list.iter()
        .map(|g| Glob {
            key,
            text: g.get_ref(),
            span: g.span(),
        })
        .collect()
}

fn rule_set(list: &[Glob<'_>]) -> Option<RuleSet> {
    let named: Vec<(String, Arc<str>)> = list
        .iter()
        .map(|g| (g.text.to_string(), Arc::from(g.text)))
        .collect();
    build_globset_with(&named, true).ok()
}

fn lint_agent(
    agent: &AgentSpec,
    ctx: &mut Ctx<'_>,
    opts: &LoadOptions,
    walk_limit: usize,
    walks: &mut HashMap<PathBuf, Option<Walk>>,
) {
    let name = agent.name.get_ref();
    let name_span = agent.name.span();
    let read = globs("files.read", &agent.files.read);
    let write = globs("files.write", &agent.files.write);
    let deny = globs("files.deny", &agent.files.deny);
    let (Some(read_set), Some(write_set), Some(deny_set)) =
        (rule_set(&read), rule_set(&write), rule_set(&deny))
    else {
        return;
    };
    // A glob without a position is the default `["**"]`: blame the agent.
    let span_of = |g: &Glob<'_>| {
        if g.span.is_empty() {
            name_span.clone()
        } else {
            g.span.clone()
        }
    };
    let describe = |g: &Glob<'_>, ctx: &Ctx<'_>| {
        if g.span.is_empty() {
            format!("{} \"{}\" (the default)", g.key, g.text)
        } else {
            format!("{} \"{}\" ({})", g.key, g.text, ctx.at(&g.span))
        }
    };
    let has_shell = agent.shell.is_some();

    // Workspaces: where writes may land.
    for ws in agent.workspaces.get_ref() {
        if ws.access == WorkspaceAccess::ReadOnly {
            continue;
        }
        let path = expand(ws.path.get_ref(), opts);
        let by = match (!write.is_empty(), has_shell) {
            (true, true) => "the file tools and commands",
            (true, false) => "the file tools",
            (false, true) => "commands",
            (false, false) => continue,
        };
        if let Some(what) = dangerous_root(&path) {
            ctx.warn(
                &ws.path.span(),
                format!(
                    "agent \"{name}\": workspace \"{}\" at {} is read-write, so {by} may write \
                     {what}; point it at a project directory or set access = \"read-only\"",
                    ws.name.get_ref(),
                    path.display()
                ),
            );
        }
    }

    // Git runs what .git/hooks and .git/config name: the same rules hold in
    // every read-write workspace of the agent.
    let writable: Vec<String> = agent
        .workspaces
        .get_ref()
        .iter()
        .filter(|w| w.access == WorkspaceAccess::ReadWrite)
        .map(|w| format!("\"{}\"", w.name.get_ref()))
        .collect();
    let git_rw = agent
        .files
        .git
        .as_ref()
        .filter(|g| *g.get_ref() == GitAccess::ReadWrite);
    if let (Some(git), false) = (git_rw, writable.is_empty()) {
        ctx.warn(
            &git.span(),
            format!(
                "agent \"{name}\": files.git = \"read-write\" lets {} write git metadata in {}: \
                 hooks, config (core.fsmonitor, core.hooksPath, core.sshCommand, filter and diff \
                 drivers, aliases) and new nested repositories, all of which run programs as \
                 whoever next runs git there; keep the default \"read-only\" unless the agent \
                 must commit",
                if agent.shell.is_some() {
                    "commands and the file tools"
                } else {
                    "the file tools"
                },
                writable.join(", ")
            ),
        );
    }
    if git_rw.is_some() && !writable.is_empty() {
        let mut rules = file_rules(
            read_set.clone(),
            write_set.clone(),
            deny_set.clone(),
            name,
            "",
            false,
        );
        rules.allow_git_writes();
        for (probe, what, fix) in [
            (
                ".git/hooks/pre-commit",
                ".git/hooks/ (a hook runs as whoever next runs git there)",
                ".git/hooks/**",
            ),
            (
                ".git/config",
                ".git/config (core.hooksPath, core.fsmonitor and aliases there run programs as \
                 whoever next runs git)",
                ".git/config",
            ),
        ] {
            if rules.check(Access::Write, probe, false).allowed {
                let i = matching(&write_set, probe)[0];
                ctx.warn(
                    &span_of(&write[i]),
                    format!(
                        "agent \"{name}\": {} lets the file tools write {what} in {} {}; add \
                         \"{fix}\" to files.deny",
                        describe(&write[i], ctx),
                        if writable.len() == 1 {
                            "workspace"
                        } else {
                            "workspaces"
                        },
                        writable.join(", ")
                    ),
                );
            }
        }
    }

    // The sandbox never runs a command as root: every command would fail.
    if let Some(shell) = &agent.shell {
        if shell.uid == 0 || shell.gid == 0 {
            ctx.warn(
                &name_span,
                format!(
                    "agent \"{name}\": shell.uid and shell.gid must not be 0: the sandbox \
                     refuses to run any command as root"
                ),
            );
        }
    }

    // Network with a shell: anything can be sent anywhere.
    if let Some(shell) = &agent.shell {
        if *shell.network.get_ref() {
            let via = if *shell.allow_shell.get_ref() {
                Some(format!(
                    "shell.allow_shell = true ({})",
                    ctx.at(&shell.allow_shell.span())
                ))
            } else {
                shell
                    .commands
                    .iter()
                    .find(|c| is_interpreter(c.program.get_ref()))
                    .map(|c| {
                        format!(
                            "shell.commands \"{}\" ({}), which runs other programs",
                            c.program.get_ref(),
                            ctx.at(&c.program.span())
                        )
                    })
            };
            if let Some(via) = via {
                ctx.warn(
                    &shell.network.span(),
                    format!(
                        "agent \"{name}\": shell.network = true together with {via}: any \
                         command may reach the network (exfiltration, downloads); drop one"
                    ),
                );
            }
        }
    }

    // Allow globs a deny glob fully shadows.
    let mut shadowed: Vec<Range<usize>> = Vec::new();
    for g in read.iter().chain(write.iter()) {
        if let Some(d) = shadowing_deny(g.text, &deny_set, &deny) {
            shadowed.push(g.span.clone());
            let span = if g.span.is_empty() {
                deny[d].span.clone()
            } else {
                g.span.clone()
            };
            ctx.warn(
                &span,
                format!(
                    "agent \"{name}\": {} is fully shadowed by {}: every path it matches is \
                     denied, so it allows nothing",
                    describe(g, ctx),
                    describe(&deny[d], ctx)
                ),
            );
        }
    }

    // Allow globs that match nothing in the workspaces (when all exist).
    let explicit: Vec<&Glob<'_>> = read
        .iter()
        .chain(write.iter())
        .filter(|g| !g.span.is_empty() && !shadowed.contains(&g.span))
        .collect();
    if explicit.is_empty() {
        return;
    }
    for ws in agent.workspaces.get_ref() {
        let path = expand(ws.path.get_ref(), opts);
        walks
            .entry(path)
            .or_insert_with_key(|p| walk(p, walk_limit));
    }
    let mut walked = Vec::new();
    for ws in agent.workspaces.get_ref() {
        let path = expand(ws.path.get_ref(), opts);
        match walks.get(&path) {
            Some(Some(w)) => walked.push((ws, path, w)),
            _ => return,
        }
    }
    let complete = walked.iter().all(|(_, _, w)| w.complete);
    let entries: usize = walked.iter().map(|(_, _, w)| w.entries.len()).sum();
    if entries == 0 {
        return;
    }
    for g in explicit {
        let Ok(glob) = compile_glob(g.text) else {
            continue;
        };
        let m = glob.compile_matcher();
        let hit = walked
            .iter()
            .any(|(_, _, w)| w.entries.iter().any(|e| m.is_match(e)));
        if hit {
            continue;
        }
        if !complete {
            ctx.note(
                &g.span,
                format!(
                    "agent \"{name}\": {} matched none of the first {walk_limit} entries of a \
                     workspace; the rest were not walked",
                    describe(g, ctx)
                ),
            );
            continue;
        }
        let places: Vec<String> = walked
            .iter()
            .map(|(ws, path, _)| format!("\"{}\" ({})", ws.name.get_ref(), path.display()))
            .collect();
        ctx.warn(
            &g.span,
            format!(
                "agent \"{name}\": {} matches nothing in workspace {} ({entries} entries); is it \
                 misspelt?",
                describe(g, ctx),
                places.join(", ")
            ),
        );
    }
}

/// `[agents.sessions]`: settings that do nothing or are not what they say.
/// (The table is not spanned: the agent's name is blamed.)
fn lint_sessions(agent: &AgentSpec, ctx: &mut Ctx<'_>) {
    use crate::limits::{MAX_SESSION_IDLE_TIMEOUT_MS, MAX_SESSION_LIFETIME_MS};
    let Some(s) = &agent.sessions else { return };
    let name = agent.name.get_ref();
    let span = agent.name.span();
    if s.allowed == Some(false) {
        return;
    }
    if agent.shell.is_none() {
        ctx.warn(
            &span,
            format!(
                "agent \"{name}\": [agents.sessions] has no effect without an [agents.shell] \
                 table (sessions run commands); add one, or remove the sessions table"
            ),
        );
    }
    for (key, value, max) in [
        (
            "max_lifetime_ms",
            s.max_lifetime_ms,
            MAX_SESSION_LIFETIME_MS,
        ),
        (
            "idle_timeout_ms",
            s.idle_timeout_ms,
            MAX_SESSION_IDLE_TIMEOUT_MS,
        ),
    ] {
        if value.is_some_and(|v| v > max) {
            ctx.warn(
                &span,
                format!(
                    "agent \"{name}\": sessions.{key} is above the daemon's maximum of {max} ms \
                     and is lowered to it; write {max} or less"
                ),
            );
        }
    }
    if let (Some(idle), Some(life)) = (s.idle_timeout_ms, s.max_lifetime_ms) {
        if idle > life {
            ctx.note(
                &span,
                format!(
                    "agent \"{name}\": sessions.idle_timeout_ms ({idle}) is longer than \
                     max_lifetime_ms ({life}), so no session ever idles out"
                ),
            );
        }
    }
    for (key, value) in [
        ("max_sessions", s.max_sessions),
        ("max_processes", s.max_processes),
    ] {
        if value == Some(0) {
            ctx.warn(
                &span,
                format!(
                    "agent \"{name}\": sessions.{key} = 0 refuses every {}; say \
                     `allowed = false` if sessions are not wanted",
                    if key == "max_sessions" {
                        "session"
                    } else {
                        "background process"
                    }
                ),
            );
        }
    }
}

/// A workspace path as the daemon reads it.
fn expand(path: &str, opts: &LoadOptions) -> PathBuf {
    PathBuf::from(path.replace("${STATE_DIRECTORY}", &opts.state_dir.to_string_lossy()))
}

/// Lexical normal form: no `.`, `..` applied, no trailing `/`.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// What writing beneath `path` would reach, when that is dangerous.
pub fn dangerous_root(path: &Path) -> Option<String> {
    let mut candidates = vec![lexical(path)];
    if let Ok(real) = std::fs::canonicalize(path) {
        if !candidates.contains(&real) {
            candidates.push(real);
        }
    }
    candidates.iter().find_map(|p| classify(p))
}

fn classify(p: &Path) -> Option<String> {
    let s = p.to_string_lossy();
    if s == "/" {
        return Some("anywhere on the host (the workspace is /)".into());
    }
    for sys in [
        "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/boot", "/dev", "/proc",
        "/sys",
    ] {
        if p == Path::new(sys) || p.starts_with(sys) {
            return Some(format!("the host's system files ({})", p.display()));
        }
    }
    for exact in ["/var", "/run", "/opt", "/srv", "/home", "/root", "/tmp"] {
        if p == Path::new(exact) {
            let what = match exact {
                "/home" => "every user's home directory (/home)".to_string(),
                "/root" => "root's home directory (/root)".to_string(),
                _ => format!("a whole system directory ({exact})"),
            };
            return Some(what);
        }
    }
    let mut parts = p.components().skip(1);
    if parts.next() == Some(Component::Normal("home".as_ref())) && parts.count() == 1 {
        return Some(format!(
            "a home directory ({}: shell startup files, ~/.ssh)",
            p.display()
        ));
    }
    None
}

/// Characters that make a glob component more than a literal name.
const META: &[char] = &['*', '?', '[', ']', '{', '}', '\\'];

/// The deny glob (index) that denies every path `allow` can match, if that
/// can be shown from the text of the globs. Sound, not complete:
///
/// 1. the deny glob is the same text, or `**` / `**/*` (matches anything);
/// 2. the allow glob's leading literal directories (`secrets` in
///    `secrets/*.txt`; the whole glob when it has no wildcard) are denied,
///    themselves or through a parent, exactly as the daemon checks a path;
/// 3. the deny glob is `DIR/**` with a literal `DIR` that is, or is a parent
///    of, those leading directories (and the allow glob goes beneath them);
/// 4. the deny glob is `**/NAME` and the allow glob's last component is the
///    same `NAME` glob or a literal name `NAME` matches.
fn shadowing_deny(allow: &str, deny_set: &RuleSet, deny: &[Glob<'_>]) -> Option<usize> {
    if deny.is_empty() {
        return None;
    }
    let comps: Vec<&str> = allow.split('/').collect();
    if comps.iter().any(|c| c.is_empty()) {
        return None;
    }
    // 1.
    if let Some(i) = deny
        .iter()
        .position(|d| d.text == allow || d.text == "**" || d.text == "**/*")
    {
        return Some(i);
    }
    let literal = comps.iter().take_while(|c| !c.contains(META)).count();
    let fully_literal = literal == comps.len();
    // 2.
    if literal > 0 {
        let prefix = comps[..literal].join("/");
        let mut p = prefix.as_str();
        loop {
            if let Some(i) = matching(deny_set, p).first() {
                return Some(*i);
            }
            match p.rfind('/') {
                Some(slash) => p = &p[..slash],
                None => break,
            }
        }
    }
    // 3.
    if literal > 0 {
        for (i, d) in deny.iter().enumerate() {
            let Some(dir) = d.text.strip_suffix("/**") else {
                continue;
            };
            if dir.is_empty() || dir.contains(META) {
                continue;
            }
            let dcomps: Vec<&str> = dir.split('/').collect();
            let beneath = if fully_literal {
                comps.len() > dcomps.len()
            } else {
                literal >= dcomps.len()
            };
            if beneath && comps[..dcomps.len()] == dcomps[..] {
                return Some(i);
            }
        }
    }
    // 4.
    let (head, last) = match allow.rfind('/') {
        Some(slash) => (&allow[..slash], &allow[slash + 1..]),
        None => ("", allow),
    };
    let self_contained = head.matches('{').count() == head.matches('}').count()
        && head.matches('[').count() == head.matches(']').count()
        && !head.contains('\\');
    for (i, d) in deny.iter().enumerate() {
        let Some(name) = d.text.strip_prefix("**/") else {
            continue;
        };
        if name.contains('/') {
            continue;
        }
        if self_contained && name == last {
            return Some(i);
        }
        if !last.contains(META) {
            if let Ok(g) = compile_glob(name) {
                if g.compile_matcher().is_match(last) {
                    return Some(i);
                }
            }
        }
    }
    None
}

/// The relative paths (files and directories) under a workspace root.
#[derive(Debug)]
struct Walk {
    entries: Vec<String>,
    /// False when the limit was hit or a directory could not be read.
    complete: bool,
}

/// Walks `root` breadth-first without following symlinks, up to `limit`
/// entries. None when `root` is not a directory on this host.
fn walk(root: &Path, limit: usize) -> Option<Walk> {
    if !std::fs::symlink_metadata(root).ok()?.is_dir() {
        return None;
    }
    let mut entries = Vec::new();
    let mut complete = true;
    let mut queue = VecDeque::from([String::new()]);
    'outer: while let Some(rel) = queue.pop_front() {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        let Ok(read) = std::fs::read_dir(&dir) else {
            complete = false;
            continue;
        };
        for entry in read {
            let Ok(entry) = entry else {
                complete = false;
                continue;
            };
            if entries.len() >= limit {
                complete = false;
                break 'outer;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                queue.push_back(path.clone());
            }
            entries.push(path);
        }
    }
    Some(Walk { entries, complete })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shadow(allow: &str, deny: &[&str]) -> Option<usize> {
        let d: Vec<Glob<'_>> = deny
            .iter()
            .map(|t| Glob {
                key: "files.deny",
                text: t,
                span: 0..0,
            })
            .collect();
        shadowing_deny(allow, &rule_set(&d).unwrap(), &d)
    }

    #[test]
    fn shadowing_is_reported_only_when_certain() {
        assert_eq!(shadow("secrets/**", &["x", "secrets/**"]), Some(1));
        assert_eq!(shadow("secrets/*.txt", &["secrets/**"]), Some(0));
        assert_eq!(shadow("secrets/a/**", &["secrets"]), Some(0));
        assert_eq!(shadow("secrets/a.txt", &["secrets/*"]), Some(0));
        assert_eq!(shadow("a/b/**", &["a/**"]), Some(0));
        assert_eq!(shadow("src/**/.env", &["**/.env"]), Some(0));
        assert_eq!(shadow("**/*.pem", &["**/*.pem"]), Some(0));
        assert_eq!(shadow("src/**/*.pem", &["**/*.pem"]), Some(0));
        assert_eq!(shadow("**", &["**"]), Some(0));
        // Not shadowed, or not provably.
        assert_eq!(shadow("secrets/**", &["secrets/*.key"]), None);
        assert_eq!(shadow("**", &["**/.env", ".git/**"]), None);
        assert_eq!(shadow("secrets", &["secrets/**"]), None);
        // Shadowed (every path under src/ has a parent or itself in src/*),
        // but not shown by the rules above: an accepted miss.
        assert_eq!(shadow("src/**", &["src/*"]), None);
        assert_eq!(shadow("{a,b}/x", &["a/**"]), None);
        assert_eq!(shadow("src/*.rs", &["**/*.pem"]), None);
    }

    #[test]
    fn session_settings_that_do_nothing_are_reported() {
        let text = r#"
[[agents]]
name = "a"
uids = [1000]
[[agents.workspaces]]
name = "main"
path = "/tmp/aj-lint-sessions"
[agents.sessions]
max_lifetime_ms = 999999999999
idle_timeout_ms = 7200000
max_processes = 0
"#;
        let opts = LoadOptions {
            state_dir: PathBuf::from("/tmp"),
            open_workspaces: false,
        };
        let report = lint_sources_with_limit(&[(PathBuf::from("p.toml"), text.into())], &opts, 10);
        let all: Vec<String> = report
            .warnings
            .iter()
            .chain(&report.notes)
            .map(|d| d.message.clone())
            .collect();
        let has = |what: &str| all.iter().any(|m| m.contains(what));
        assert!(has("no effect without an [agents.shell]"), "{all:#?}");
        assert!(
            has("max_lifetime_ms is above the daemon's maximum"),
            "{all:#?}"
        );
        assert!(has("max_processes = 0"), "{all:#?}");
        // 2 h idle within a lifetime capped at 24 h: not reported.
        assert!(!has("no session ever idles out"), "{all:#?}");
    }

    #[test]
    fn dangerous_roots() {
        assert!(classify(Path::new("/")).is_some());
        assert!(classify(Path::new("/etc")).is_some());
        assert!(classify(Path::new("/etc/nginx")).is_some());
        assert!(classify(Path::new("/root")).is_some());
        assert!(classify(Path::new("/home/alice")).is_some());
        assert!(classify(Path::new("/home")).is_some());
        assert!(classify(Path::new("/home/alice/project")).is_none());
        assert!(classify(Path::new("/var/lib/agentjail/workspaces/local")).is_none());
        assert!(classify(Path::new("/srv/repo")).is_none());
        assert_eq!(lexical(Path::new("/srv/../etc/")), PathBuf::from("/etc"));
    }

    #[test]
    fn walk_is_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("a/b")).unwrap();
        std::fs::write(tmp.path().join("a/b/c.txt"), "").unwrap();
        let w = walk(tmp.path(), 100).unwrap();
        assert!(w.complete);
        assert_eq!(w.entries, vec!["a", "a/b", "a/b/c.txt"]);
        let w = walk(tmp.path(), 2).unwrap();
        assert!(!w.complete);
        assert!(walk(&tmp.path().join("missing"), 10).is_none());
    }
}
