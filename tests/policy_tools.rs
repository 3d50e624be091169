//! The security team's policy tools, run as the real binary: `policy
//! explain`, `policy test` (with the shipped case files), `policy schema`
//! (the checked-in schema is up to date and accepts the shipped policies),
//! and the lint of `policy check`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_agentjail");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn policies() -> PathBuf {
    repo().join("policies")
}

fn examples() -> PathBuf {
    repo().join("policies/examples")
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn run<I, S>(args: I) -> Out
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run agentjail");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn explain(dir: &Path, args: &[&str]) -> Out {
    let mut all: Vec<String> = vec!["policy".into(), "explain".into(), "--dir".into()];
    all.push(dir.display().to_string());
    all.extend(args.iter().map(|s| s.to_string()));
    run(all)
}

/// The line of `out` that starts with `prefix` (after indentation).
fn line<'a>(out: &'a Out, prefix: &str) -> &'a str {
    out.stdout
        .lines()
        .find(|l| l.trim_start().starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?}:\n{out}"))
}

// ---------------------------------------------------------------- explain

#[test]
fn explain_allow_names_the_rule_and_the_denies_checked() {
    let out = explain(&policies(), &["--agent", "local", "--read", "src/main.rs"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(line(&out, "decision:"), "decision: allow", "{out}");
    assert!(
        line(&out, "rule:").contains("local: files.read \"**\" (default.toml:"),
        "{out}"
    );
    // Every deny glob was checked: they are listed with their file:line.
    assert!(
        out.stdout
            .contains("no match  local: files.deny \"**/.env\" (default.toml:"),
        "{out}"
    );
    assert!(out.stdout.contains("policy only"), "{out}");
}

#[test]
fn explain_deny_shows_the_allow_it_overrides() {
    let out = explain(&policies(), &["--agent", "local", "--write", "sub/.env"]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(line(&out, "decision:"), "decision: deny", "{out}");
    let rule = line(&out, "rule:");
    assert!(
        rule.contains("local: files.deny \"**/.env\" (default.toml:"),
        "{out}"
    );
    let overridden = line(&out, "overridden");
    assert!(
        overridden.contains("local: files.write \"**\" (default.toml:")
            && overridden.contains("the deny wins"),
        "{out}"
    );
}

#[test]
fn explain_lists_the_globs_that_nearly_matched() {
    let out = explain(
        &examples(),
        &["--agent", "coder", "--write", ".github/workflows/ci.yml"],
    );
    assert_eq!(out.code, 1, "{out}");
    assert!(
        line(&out, "rule:").contains("coder: no files.write glob matches"),
        "{out}"
    );
    for glob in ["src/**", "tests/**", "*.md"] {
        let want = format!("no match  coder: files.write \"{glob}\" (coding-agent.toml:");
        assert!(out.stdout.contains(&want), "{want:?} missing:\n{out}");
    }
}

#[test]
fn explain_read_only_workspace_overrides_write_globs() {
    let out = explain(
        &examples(),
        &[
            "--agent",
            "coder",
            "--workspace",
            "reference",
            "--write",
            "NOTES.md",
        ],
    );
    assert_eq!(out.code, 1, "{out}");
    assert!(
        line(&out, "rule:").contains("workspace \"reference\" is read-only"),
        "{out}"
    );
    assert!(
        line(&out, "overridden").contains("files.write \"*.md\" (coding-agent.toml:"),
        "{out}"
    );
}

#[test]
fn explain_deny_through_a_parent_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("policies");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("p.toml"),
        "[[agents]]\nname = \"a\"\nuids = [4100]\n[[agents.workspaces]]\nname = \"w\"\npath = \"/srv/nowhere\"\n[agents.files]\ndeny = [\"secrets\", \"secret*\"]\n",
    )
    .unwrap();
    let out = explain(
        &dir,
        &["--agent", "a", "--read", "./secrets/db/../db/pw.txt"],
    );
    assert_eq!(out.code, 1, "{out}");
    assert!(
        line(&out, "rule:").contains("a: files.deny \"secrets\" (p.toml:8)"),
        "{out}"
    );
    assert!(
        line(&out, "matched:").contains("parent directory \"secrets\""),
        "{out}"
    );
    assert!(
        line(&out, "also denies").contains("files.deny \"secret*\" (p.toml:8)"),
        "{out}"
    );
    assert!(
        out.stdout.contains("normalised to \"secrets/db/pw.txt\""),
        "{out}"
    );
    // The workspace is not created: explain is policy-only.
    assert!(!Path::new("/srv/nowhere").exists());
}

#[test]
fn explain_commands_and_environment() {
    let out = explain(
        &policies(),
        &[
            "--agent", "local", "--exec", "git", "-c", "a=b", "push", "--force",
        ],
    );
    assert_eq!(out.code, 1, "{out}");
    assert!(
        line(&out, "rule:")
            .contains("local: shell.commands[git].deny_args \"push\" (default.toml:"),
        "{out}"
    );
    assert!(line(&out, "matched:").contains("\"push\""), "{out}");
    assert!(
        line(&out, "overridden").contains("shell.commands \"git\" (default.toml:"),
        "{out}"
    );

    let out = explain(
        &policies(),
        &["--agent", "local", "--exec", "git", "status"],
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(
        line(&out, "rule:").contains("local: shell.commands \"git\" (default.toml:"),
        "{out}"
    );

    let out = explain(&examples(), &["--agent", "coder", "--shell", "make test"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        line(&out, "rule:").contains("shell.allow_shell is false"),
        "{out}"
    );

    let out = explain(&policies(), &["--agent", "local", "--env", "RUST_LOG"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        line(&out, "rule:").contains("shell.env \"RUST_LOG\" (default.toml:"),
        "{out}"
    );
    let out = explain(
        &policies(),
        &["--agent", "local", "--env", "AWS_SECRET_KEY"],
    );
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stdout.contains("no match  local: shell.env"), "{out}");
}

#[test]
fn explain_usage_and_policy_errors_exit_2() {
    let out = explain(&policies(), &["--agent", "nobody", "--read", "x"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("no agent \"nobody\""), "{out}");
    let out = explain(&policies(), &["--agent", "local"]);
    assert_eq!(out.code, 2, "no request: {out}");
    let out = explain(
        &policies(),
        &["--agent", "local", "--read", "x", "--write", "y"],
    );
    assert_eq!(out.code, 2, "two requests: {out}");
    let out = explain(
        &policies(),
        &["--agent", "local", "--read", "../etc/passwd"],
    );
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("leaves the workspace"), "{out}");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("bad.toml"), "[[agents]]\nnope = 1\n").unwrap();
    let out = explain(tmp.path(), &["--agent", "a", "--read", "x"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stdout.contains("bad.toml:2:1:"), "{out}");
}

// ------------------------------------------------------------------- test

fn shipped_case_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(policies().join("cases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".cases.toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn shipped_case_files_pass() {
    let files = shipped_case_files();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.contains(&"default.cases.toml".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"coding-agent.cases.toml".to_string()),
        "{names:?}"
    );
    let cases: usize = files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .filter(|l| l.trim() == "[[case]]")
                .count()
        })
        .sum();
    let mut args = vec!["policy".to_string(), "test".to_string()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let out = run(args);
    assert_eq!(out.code, 0, "{out}");
    let summary = out.stdout.lines().last().unwrap_or_default();
    assert_eq!(summary, format!("{cases} passed, 0 failed"), "{out}");
    assert!(!out.stdout.contains("FAIL"), "{out}");
}

#[test]
fn a_wrong_case_fails_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = tmp.path().join("wrong.cases.toml");
    std::fs::write(
        &cases,
        "[[case]]\nagent = \"local\"\nread = \"src/lib.rs\"\nexpect = \"allow\"\n\n\
         [[case]]\nname = \"believed writable\"\nagent = \"local\"\nwrite = \".git/hooks/pre-push\"\nexpect = \"allow\"\n\n\
         [[case]]\nagent = \"local\"\nread = \".env\"\nexpect = \"deny\"\nrule = \"files.read\"\n",
    )
    .unwrap();
    let out = run([
        "policy".as_ref(),
        "test".as_ref(),
        "--dir".as_ref(),
        policies().as_os_str(),
        cases.as_os_str(),
    ]);
    assert_eq!(out.code, 1, "{out}");
    let fail = out
        .stdout
        .lines()
        .find(|l| l.contains("believed writable"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(fail.starts_with("FAIL"), "{out}");
    assert!(
        fail.contains(&format!("{}:6", cases.display())),
        "the case's file:line: {out}"
    );
    assert!(
        fail.contains("expected allow, got deny by local: files.git = \"read-only\""),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("expected deny by a rule containing \"files.read\""),
        "{out}"
    );
    assert_eq!(
        out.stdout.lines().last().unwrap_or_default(),
        "1 passed, 2 failed",
        "{out}"
    );
}

#[test]
fn a_broken_case_file_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = tmp.path().join("broken.cases.toml");
    std::fs::write(
        &cases,
        "[[case]]\nagent = \"local\"\nread = \"x\"\nexpect = \"maybe\"\n",
    )
    .unwrap();
    let out = run([
        "policy".as_ref(),
        "test".as_ref(),
        "--dir".as_ref(),
        policies().as_os_str(),
        cases.as_os_str(),
    ]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stdout.contains(&format!("{}:4:10:", cases.display())),
        "{out}"
    );
}

// ----------------------------------------------------------------- schema

const SCHEMA: &str = "policies/agentjail-policy.schema.json";

#[test]
fn checked_in_schema_is_up_to_date() {
    let out = run(["policy", "schema"]);
    assert_eq!(out.code, 0, "{out}");
    let checked_in = std::fs::read_to_string(repo().join(SCHEMA)).unwrap_or_default();
    assert!(
        checked_in == out.stdout,
        "{SCHEMA} is out of date with src/policy/model.rs; regenerate it with\n\n    \
         cargo run -- policy schema > {SCHEMA}\n"
    );
}

/// A small JSON Schema (draft-07) checker for what the policy schema uses.
fn validate(
    root: &serde_json::Value,
    schema: &serde_json::Value,
    value: &toml::Value,
    at: &str,
    errors: &mut Vec<String>,
) {
    use serde_json::Value as J;
    if let Some(r) = schema.get("$ref").and_then(J::as_str) {
        let name = r.trim_start_matches("#/definitions/");
        return validate(root, &root["definitions"][name], value, at, errors);
    }
    if let Some(all) = schema.get("allOf").and_then(J::as_array) {
        for s in all {
            validate(root, s, value, at, errors);
        }
    }
    if let Some(one) = schema.get("oneOf").and_then(J::as_array) {
        let ok = one
            .iter()
            .filter(|s| {
                let mut e = Vec::new();
                validate(root, s, value, at, &mut e);
                e.is_empty()
            })
            .count();
        if ok != 1 {
            errors.push(format!("{at}: {value} matches {ok} of oneOf"));
        }
    }
    if let Some(c) = schema.get("const") {
        if c.as_str() != value.as_str() {
            errors.push(format!("{at}: {value} is not {c}"));
        }
    }
    let ty = schema.get("type").and_then(J::as_str);
    let type_ok = matches!(
        (ty, value),
        (None, _)
            | (Some("string"), toml::Value::String(_))
            | (Some("integer"), toml::Value::Integer(_))
            | (Some("boolean"), toml::Value::Boolean(_))
            | (Some("array"), toml::Value::Array(_))
            | (Some("object"), toml::Value::Table(_))
    );
    if !type_ok {
        errors.push(format!("{at}: {value} is not of type {}", ty.unwrap()));
        return;
    }
    match value {
        toml::Value::Table(t) => {
            let props = schema.get("properties").and_then(J::as_object);
            for (k, v) in t {
                match props.and_then(|p| p.get(k)) {
                    Some(s) => validate(root, s, v, &format!("{at}.{k}"), errors),
                    None if schema.get("additionalProperties") == Some(&J::Bool(false)) => {
                        errors.push(format!("{at}: unknown key {k}"))
                    }
                    None => {}
                }
            }
            for r in schema
                .get("required")
                .and_then(J::as_array)
                .into_iter()
                .flatten()
            {
                if !t.contains_key(r.as_str().unwrap()) {
                    errors.push(format!("{at}: missing {r}"));
                }
            }
        }
        toml::Value::Array(items) => {
            if let Some(min) = schema.get("minItems").and_then(J::as_u64) {
                if (items.len() as u64) < min {
                    errors.push(format!("{at}: fewer than {min} items"));
                }
            }
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    validate(root, s, v, &format!("{at}[{i}]"), errors);
                }
            }
        }
        _ => {}
    }
}

fn schema_errors(policy_text: &str) -> Vec<String> {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join(SCHEMA)).unwrap()).unwrap();
    let value: toml::Value = toml::from_str(policy_text).unwrap();
    let mut errors = Vec::new();
    validate(&schema, &schema, &value, "", &mut errors);
    errors
}

#[test]
fn schema_accepts_the_shipped_policies_and_rejects_typos() {
    for file in [
        policies().join("default.toml"),
        examples().join("coding-agent.toml"),
    ] {
        let errors = schema_errors(&std::fs::read_to_string(&file).unwrap());
        assert!(errors.is_empty(), "{}: {errors:?}", file.display());
    }
    let errors = schema_errors(
        "[[agents]]\nname = \"a\"\nworkspaces = []\n[agents.files]\nreed = [\"**\"]\n[agents.shell]\nnetwork = \"no\"\n[[agents.shell.commands]]\nprogram = \"git\"\ndeny_arg = []\n",
    );
    let all = errors.join("\n");
    for want in [
        "unknown key reed",
        "network",
        "unknown key deny_arg",
        "fewer than 1",
    ] {
        assert!(all.contains(want), "{want:?} not reported:\n{all}");
    }
    let errors = schema_errors(
        "[[agents]]\nname = \"a\"\n[[agents.workspaces]]\nname = \"w\"\npath = \"/w\"\naccess = \"rw\"\n",
    );
    assert!(errors.iter().any(|e| e.contains("access")), "{errors:?}");
}

// ------------------------------------------------------------------- lint

fn check(dir: &Path, deny_warnings: bool) -> Out {
    let mut args = vec!["policy".to_string(), "check".to_string()];
    if deny_warnings {
        args.push("--deny-warnings".into());
    }
    args.push(dir.display().to_string());
    run(args)
}

fn warnings(out: &Out) -> Vec<&str> {
    out.stdout
        .lines()
        .filter(|l| l.contains(": warning: "))
        .collect()
}

#[test]
fn shipped_policies_are_lint_clean() {
    for dir in [policies(), examples()] {
        let out = check(&dir, true);
        assert_eq!(out.code, 0, "{out}");
        assert!(warnings(&out).is_empty(), "{out}");
        assert!(out.stdout.contains("ok ("), "{out}");
        assert!(out.stdout.contains("0 warning(s)"), "{out}");
    }
}

/// Writes `policy` as `p.toml` in a fresh policy dir; `{ws}` is a real
/// workspace holding `src/main.rs` and `README.md`.
fn lint_dir(policy: &str) -> (tempfile::TempDir, PathBuf, String) {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    std::fs::create_dir_all(ws.join("src")).unwrap();
    std::fs::write(ws.join("src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(ws.join("README.md"), "# x\n").unwrap();
    let dir = tmp.path().join("policies");
    std::fs::create_dir(&dir).unwrap();
    let text = policy.replace("{ws}", &ws.display().to_string());
    std::fs::write(dir.join("p.toml"), &text).unwrap();
    (tmp, dir, text)
}

/// The warning reported at `line` (1-based) of p.toml, with its column.
fn warning_at<'a>(out: &'a Out, dir: &Path, line: usize, needle: &str) -> &'a str {
    let prefix = format!("{}:{line}:", dir.join("p.toml").display());
    warnings(out)
        .into_iter()
        .find(|l| l.starts_with(&prefix) && l.contains(needle))
        .unwrap_or_else(|| panic!("no warning {needle:?} at line {line}:\n{out}"))
}

fn col_of(text: &str, line: usize, needle: &str) -> usize {
    text.lines().nth(line - 1).unwrap().find(needle).unwrap() + 1
}

#[test]
fn lint_warns_about_writable_system_and_home_directories() {
    let (_tmp, dir, text) = lint_dir(
        "[[agents]]\nname = \"a\"\nuids = [4201]\n[agents.files]\ndeny = [\".git/hooks/**\", \".git/config\"]\n\
         [[agents.workspaces]]\nname = \"root\"\npath = \"/\"\n\
         [[agents.workspaces]]\nname = \"etc\"\npath = \"/etc\"\n\
         [[agents.workspaces]]\nname = \"home\"\npath = \"/home/alice\"\n\
         [[agents.workspaces]]\nname = \"roothome\"\npath = \"/root\"\n\
         [[agents.workspaces]]\nname = \"ok\"\npath = \"/srv/app\"\n\
         [[agents.workspaces]]\nname = \"etc-ro\"\npath = \"/etc\"\naccess = \"read-only\"\n",
    );
    let out = check(&dir, false);
    assert_eq!(out.code, 0, "warnings alone do not fail: {out}");
    for (line, needle) in [
        (8, "workspace \"root\" at /"),
        (11, "workspace \"etc\" at /etc"),
        (14, "workspace \"home\" at /home/alice"),
        (17, "workspace \"roothome\" at /root"),
    ] {
        let w = warning_at(&out, &dir, line, needle);
        let col = col_of(&text, line, "\"/");
        assert!(w.contains(&format!(":{line}:{col}: warning: ")), "{w}");
    }
    assert_eq!(warnings(&out).len(), 4, "{out}");
    let out = check(&dir, true);
    assert_eq!(out.code, 1, "--deny-warnings: {out}");
}

#[test]
fn lint_warns_about_writable_git_hooks_and_config() {
    let (_tmp, dir, text) = lint_dir(
        "[[agents]]\nname = \"a\"\nuids = [4202]\n[[agents.workspaces]]\nname = \"w\"\npath = \"/srv/app\"\n\
         [agents.files]\nwrite = [\"src/**\", \".git/**\"]\ndeny = [\".git/hooks/*.sample\"]\ngit = \"read-write\"\n",
    );
    let out = check(&dir, false);
    let opt_in = warning_at(&out, &dir, 10, "files.git = \"read-write\"");
    assert!(
        opt_in.contains("core.fsmonitor") && opt_in.contains("nested repositories"),
        "{opt_in}"
    );
    let hooks = warning_at(&out, &dir, 8, ".git/hooks/");
    assert!(
        hooks.contains(&format!(":8:{}:", col_of(&text, 8, "\".git/**\""))),
        "blames the write glob: {hooks}"
    );
    warning_at(&out, &dir, 8, "write .git/config");
    // Denying both silences it.
    let (_tmp, dir, _) = lint_dir(
        "[[agents]]\nname = \"a\"\nuids = [4202]\n[[agents.workspaces]]\nname = \"w\"\npath = \"/srv/app\"\n\
         [agents.files]\nwrite = [\"src/**\", \".git/**\"]\ndeny = [\".git/hooks\", \".git/config\"]\ngit = \"read-write\"\n",
    );
    let out = check(&dir, false);
    assert_eq!(warnings(&out).len(), 1, "only the opt-in itself: {out}");
    // The default (read-only git) warns about nothing git-related.
    let (_tmp, dir, _) = lint_dir(
        "[[agents]]\nname = \"a\"\nuids = [4202]\n[[agents.workspaces]]\nname = \"w\"\npath = \"/srv/app\"\n\
         [agents.files]\nwrite = [\"src/**\", \".git/**\"]\n",
    );
    let out = check(&dir, true);
    assert_eq!(out.code, 0, "{out}");
    // The default write ["**"] is blamed on the agent's name.
    let (_tmp, dir, _) = lint_dir(
        "[[agents]]\nname = \"a\"\nuids = [4202]\n[[agents.workspaces]]\nname = \"w\"\npath = \"/srv/app\"\n[agents.files]\ngit = \"read-write\"\n",
    );
    let out = check(&dir, false);
    let w = warning_at(&out, &dir, 2, ".git/hooks/");
    assert!(w.contains("files.write \"**\" (the default)"), "{w}");
}

#[test]
fn lint_warns_about_a_shell_with_network() {
    let (_tmp, dir, text) = lint_dir(
        "[[agents]]\nname = \"a\"\nuids = [4203]\n[[agents.workspaces]]\nname = \"w\"\npath = \"/srv/app\"\naccess = \"read-only\"\n\
         [agents.shell]\nallow_shell = true\nnetwork = true\n\
         [[agents]]\nname = \"b\"\nuids = [4204]\n[[agents.workspaces]]\nname = \"w\"\npath = \"/srv/app\"\naccess = \"read-only\"\n\
         [agents.shell]\nnetwork = true\n[[agents.shell.commands]]\nprogram = \"python3\"\n\
         [[agents]]\nname = \"c\"\nuids = [4205]\n[[agents.workspaces]]\nname = \"w\"\npath = \"/srv/app\"\naccess = \"read-only\"\n\
         [agents.shell]\nnetwork = true\n[[agents.shell.commands]]\nprogram = \"git\"\n",
    );
    let out = check(&dir, false);
    let w = warning_at(&out, &dir, 10, "shell.allow_shell = true");
    assert!(
        w.contains(&format!(":10:{}:", col_of(&text, 10, "true"))),
        "{w}"
    );
    warning_at(&out, &dir, 19, "shell.commands \"python3\"");
    // git alone with network is not a shell.
    assert_eq!(warnings(&out).len(), 2, "{out}");
}

#[test]
fn lint_warns_about_globs_matching_nothing_in_an_existing_workspace() {
    let (_tmp, dir, text) = lint_dir(
        "[[agents]]\nname = \"a\"\nuids = [4206]\n[[agents.workspaces]]\nname = \"w\"\npath = \"{ws}\"\n\
         [agents.files]\nread = [\"src/**\", \"scr/**\", \"*.md\"]\nwrite = [\"src/*.rs\", \"docs/**\"]\ndeny = [\".git/hooks/**\", \".git/config\", \"nothing-here/**\"]\n",
    );
    let out = check(&dir, false);
    let w = warning_at(&out, &dir, 8, "files.read \"scr/**\"");
    assert!(w.contains("matches nothing"), "{w}");
    assert!(
        w.contains(&format!(":8:{}:", col_of(&text, 8, "\"scr/**\""))),
        "{w}"
    );
    warning_at(&out, &dir, 9, "files.write \"docs/**\"");
    // Globs that match, and deny globs (defensive), are not reported.
    assert_eq!(warnings(&out).len(), 2, "{out}");
    // A workspace that is not on this host is not walked.
    let (_tmp, dir, _) = lint_dir(
        "[[agents]]\nname = \"a\"\nuids = [4206]\n[[agents.workspaces]]\nname = \"w\"\npath = \"/srv/not-here\"\n\
         [agents.files]\nread = [\"scr/**\"]\nwrite = []\n",
    );
    let out = check(&dir, true);
    assert_eq!(out.code, 0, "{out}");
}

#[test]
fn lint_warns_about_allows_a_deny_fully_shadows() {
    let (_tmp, dir, text) = lint_dir(
        "[[agents]]\nname = \"a\"\nuids = [4207]\n[[agents.workspaces]]\nname = \"w\"\npath = \"/srv/app\"\n\
         [agents.files]\nread = [\"**\", \"secrets/*.txt\"]\nwrite = [\"secrets/**\", \"src/**\", \"config/**/.env\"]\n\
         deny = [\"secrets/**\", \"**/.env\", \".git/hooks/**\", \".git/config\"]\n",
    );
    let out = check(&dir, false);
    let w = warning_at(&out, &dir, 9, "files.write \"secrets/**\"");
    assert!(
        w.contains("fully shadowed by files.deny \"secrets/**\" (p.toml:10)"),
        "{w}"
    );
    assert!(
        w.contains(&format!(":9:{}:", col_of(&text, 9, "\"secrets/**\""))),
        "{w}"
    );
    warning_at(&out, &dir, 8, "files.read \"secrets/*.txt\"");
    warning_at(&out, &dir, 9, "files.write \"config/**/.env\"");
    assert_eq!(warnings(&out).len(), 3, "{out}");
}

// ------------------------------------------------------------------- docs

#[test]
fn the_readme_shows_the_example_policy_as_shipped() {
    let readme = std::fs::read_to_string(policies().join("README.md")).unwrap();
    let example = std::fs::read_to_string(examples().join("coding-agent.toml")).unwrap();
    assert!(
        readme.contains(&format!("```toml\n{example}```")),
        "policies/README.md must quote policies/examples/coding-agent.toml verbatim \
         (in a ```toml block); copy the file into it"
    );
}

#[test]
fn a_report_piped_into_a_reader_that_left_ends_quietly() {
    // `agentjail policy schema | head -1` where head is already gone: the
    // command ends by SIGPIPE, as Unix tools do, and does not panic with
    // "failed printing to stdout".
    use std::os::unix::process::ExitStatusExt;
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(BIN)
        .args(["policy", "schema"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}: {stderr}",
        out.status
    );
    // Control: with a reader, the whole schema arrives.
    let whole = Command::new(BIN)
        .args(["policy", "schema"])
        .output()
        .unwrap();
    assert!(whole.status.success());
    assert!(String::from_utf8_lossy(&whole.stdout).contains("\"$schema\""));
}
