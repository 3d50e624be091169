//! Case files for `policy test`: a table of requests and the decision each
//! must get, so a policy change can be unit-tested before it ships.
//!
//! ```toml
//! policy_dir = ".."              # optional, relative to this file
//!
//! [[case]]
//! name = "secrets stay hidden"   # optional
//! agent = "local"
//! workspace = "main"             # optional: the agent's first workspace
//! read = "config/.env"           # or write, exec = [argv], shell, env
//! expect = "deny"
//! rule = "files.deny"            # optional: a substring of the deciding rule
//! ```

use super::CompiledPolicy;
use super::explain::{Explanation, Request, explain};
use super::load::{PolicyDiagnostic, line_col};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A case file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFileSpec {
    /// The policy directory the cases are for, relative to the case file.
    policy_dir: Option<String>,
    #[serde(default)]
    case: Vec<Spanned<CaseSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseSpec {
    name: Option<String>,
    agent: String,
    workspace: Option<String>,
    read: Option<String>,
    write: Option<String>,
    exec: Option<Vec<String>>,
    shell: Option<String>,
    env: Option<String>,
    tool: Option<String>,
    expect: Expect,
    rule: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    Allow,
    Deny,
}

/// One case, ready to run.
#[derive(Debug, Clone)]
pub struct Case {
    /// `file:line` of its `[[case]]` table.
    pub location: String,
    pub name: Option<String>,
    pub agent: String,
    pub workspace: Option<String>,
    pub request: Request,
    pub expect_allow: bool,
    pub rule: Option<String>,
}

/// A parsed case file.
#[derive(Debug, Clone)]
pub struct CaseFile {
    pub path: PathBuf,
    /// `policy_dir`, resolved against the case file's directory.
    pub policy_dir: Option<PathBuf>,
    pub cases: Vec<Case>,
}

/// Reads and validates a case file; every problem as `file:line:col`.
pub fn load_case_file(path: &Path) -> Result<CaseFile, Vec<PolicyDiagnostic>> {
    let diag = |line, col, message: String| PolicyDiagnostic {
        file: path.to_path_buf(),
        line,
        col,
        message,
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| vec![diag(0, 0, format!("cannot read: {e}"))])?;
    let spec: CaseFileSpec = toml::from_str(&text).map_err(|e| {
        let (line, col) = line_col(&text, e.span().map(|s| s.start).unwrap_or(0));
        vec![diag(line, col, e.message().to_string())]
    })?;
    let mut diags = Vec::new();
    let mut cases = Vec::new();
    for spanned in spec.case {
        let span = spanned.span();
        let (line, col) = line_col(&text, span.start);
        let c = spanned.into_inner();
        let mut requests = Vec::new();
        if let Some(p) = c.read {
            requests.push(Request::Read(p));
        }
        if let Some(p) = c.write {
            requests.push(Request::Write(p));
        }
        if let Some(argv) = c.exec {
            requests.push(Request::Exec(argv));
        }
        if let Some(s) = c.shell {
            requests.push(Request::Shell(s));
        }
        if let Some(n) = c.env {
            requests.push(Request::Env(n));
        }
        if let Some(t) = c.tool {
            requests.push(Request::Tool(t));
        }
        if requests.len() != 1 {
            diags.push(diag(
                line,
                col,
                "a case needs exactly one of read, write, exec, shell, env or tool".into(),
            ));
            continue;
        }
        if let Some(Request::Exec(argv)) = requests.first() {
            if argv.is_empty() {
                diags.push(diag(
                    line,
                    col,
                    "exec needs a program and its arguments".into(),
                ));
                continue;
            }
        }
        cases.push(Case {
            location: format!("{}:{line}", path.display()),
            name: c.name,
            agent: c.agent,
            workspace: c.workspace,
            request: requests.remove(0),
            expect_allow: c.expect == Expect::Allow,
            rule: c.rule,
        });
    }
    if cases.is_empty() && diags.is_empty() {
        diags.push(diag(1, 1, "no [[case]] tables in this file".into()));
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let base = path.parent().unwrap_or(Path::new("."));
    Ok(CaseFile {
        path: path.to_path_buf(),
        policy_dir: spec.policy_dir.map(|d| base.join(d)),
        cases,
    })
}

/// What running one case gave.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub passed: bool,
    /// The decision, or why the case could not be decided.
    pub result: Result<Explanation, String>,
    /// Why it failed, for people.
    pub failure: Option<String>,
}

/// Runs one case against a compiled policy.
pub fn run_case(policy: &CompiledPolicy, case: &Case) -> Outcome {
    match explain(
        policy,
        &case.agent,
        case.workspace.as_deref(),
        &case.request,
    ) {
        Err(e) => Outcome {
            passed: false,
            failure: Some(format!("cannot decide: {e}")),
            result: Err(e.to_string()),
        },
        Ok(ex) => {
            let want = if case.expect_allow { "allow" } else { "deny" };
            let got = if ex.allowed { "allow" } else { "deny" };
            let failure = if ex.allowed != case.expect_allow {
                Some(format!("expected {want}, got {got} by {}", ex.rule))
            } else {
                case.rule
                    .as_ref()
                    .filter(|r| !ex.rule.contains(r.as_str()))
                    .map(|r| {
                        format!(
                            "expected {want} by a rule containing {r:?}, got {got} by {}",
                            ex.rule
                        )
                    })
            };
            Outcome {
                passed: failure.is_none(),
                failure,
                result: Ok(ex),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cases_with_their_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("c.cases.toml");
        std::fs::write(
            &path,
            "policy_dir = \"..\"\n\n[[case]]\nagent = \"a\"\nread = \"x\"\nexpect = \"allow\"\n\n[[case]]\nagent = \"a\"\nexec = [\"git\", \"push\"]\nexpect = \"deny\"\nrule = \"push\"\n",
        )
        .unwrap();
        let f = load_case_file(&path).unwrap();
        assert_eq!(f.cases.len(), 2);
        assert_eq!(f.policy_dir.unwrap(), tmp.path().join(".."));
        assert!(f.cases[0].location.ends_with(":3") || f.cases[0].location.ends_with(":4"));
        assert_eq!(
            f.cases[1].request,
            Request::Exec(vec!["git".into(), "push".into()])
        );
    }

    #[test]
    fn a_case_needs_one_request() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("c.toml");
        std::fs::write(
            &path,
            "[[case]]\nagent = \"a\"\nread = \"x\"\nwrite = \"y\"\nexpect = \"allow\"\n",
        )
        .unwrap();
        let e = load_case_file(&path).unwrap_err();
        assert!(e[0].message.contains("exactly one"), "{:?}", e);
        std::fs::write(
            &path,
            "[[case]]\nagent = \"a\"\nread = \"x\"\nexpect = \"yes\"\n",
        )
        .unwrap();
        let e = load_case_file(&path).unwrap_err();
        assert_eq!(e[0].line, 4, "{:?}", e);
    }
}
