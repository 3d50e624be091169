//! A randomized test of the first promise: whatever sequence of file-tool
//! calls and commands an agent makes (renames, hard links, symlinks, mkdir,
//! moves of parents, copies), no answer ever carries a denied file's
//! content, and the denied files stay as they were on the host.
//!
//! A fixed seed and budget run in CI (`AJ_RANDOM_STEPS`, default 24 steps of
//! one command and several file calls each); a longer run is one command:
//!
//! ```sh
//! AJ_RANDOM_STEPS=2000 AJ_RANDOM_SEED=$RANDOM cargo test --test random_paths -- --nocapture
//! ```
//!
//! A failure prints the seed and the step that leaked, to replay it.

#[path = "shell_common/mod.rs"]
mod shell_common;

use agentjail::proto::*;
use shell_common::*;
use std::path::Path;

const SECRET: &str = "RANDSECRET";
const DENIED: &[&str] = &["secrets/token", "a/.env", "b/c/k.pem", "b/.env.local"];

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every path in the workspace (host view, symlinks not followed), plus a
/// few that do not exist yet.
fn pool(ws: &Path, rng: &mut fastrand::Rng) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![ws.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(ws).unwrap().to_string_lossy().into_owned();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p);
            }
            out.push(rel);
        }
    }
    for _ in 0..3 {
        let base = out
            .get(rng.usize(..out.len().max(1)))
            .cloned()
            .unwrap_or_default();
        out.push(format!(
            "{base}{}",
            ["x", "/n", ".env", ".git", "/.env"][rng.usize(..5)]
        ));
    }
    out.sort();
    out
}

fn pick<'a>(rng: &mut fastrand::Rng, v: &'a [String]) -> &'a str {
    &v[rng.usize(..v.len())]
}

fn q(p: &str) -> String {
    format!("'/workspace/{}'", p.replace('\'', ""))
}

#[tokio::test]
async fn random_sequences_never_return_denied_content() {
    let seed = env_or("AJ_RANDOM_SEED", 0x5eed_0009);
    let steps = env_or("AJ_RANDOM_STEPS", 24);
    let mut rng = fastrand::Rng::with_seed(seed);
    let d = ShellDaemon::start_with(Policy {
        files: r#"deny = ["**/.env", "**/.env.*", "**/*.pem", "secrets/**"]"#.into(),
        ..Policy::default()
    })
    .await;
    for (i, rel) in DENIED.iter().enumerate() {
        put_ws(&d.dirs, rel, format!("{SECRET}-{i}\n"));
    }
    for rel in ["a/ok.txt", "b/c/readme", "b/d/e/f.txt", "top.txt"] {
        put_ws(&d.dirs, rel, "ordinary\n");
    }
    let originals: Vec<Vec<u8>> = DENIED
        .iter()
        .map(|r| std::fs::read(d.dirs.w(r)).unwrap())
        .collect();
    let _ = std::process::Command::new("chown")
        .args(["-R", &format!("{SANDBOX_UID}:{SANDBOX_GID}")])
        .arg(d.dirs.w(""))
        .status();
    let mut c = d.client().await;
    let mut file_calls = 0u64;
    for step in 0..steps {
        let paths = pool(&d.dirs.w(""), &mut rng);
        // One command of a few random operations.
        let mut script = String::new();
        for _ in 0..5 {
            let (x, y) = (pick(&mut rng, &paths), pick(&mut rng, &paths));
            script.push_str(&match rng.usize(..8) {
                0 => format!("mv {} {}", q(x), q(y)),
                1 => format!("ln {} {}", q(x), q(y)),
                2 => format!("ln -s {} {}", q(x), q(y)),
                3 => format!("mkdir -p {}", q(y)),
                4 => format!("cp -r {} {}", q(x), q(y)),
                5 => format!("cat {}", q(x)),
                6 => format!("mv {} {}", q(&parent(x)), q(y)),
                _ => format!("rm -rf {}", q(&parent(y))),
            });
            script.push_str(" 2>/dev/null; ");
        }
        script.push_str("grep -r RANDSECRET /workspace 2>/dev/null; true");
        let r = d.sh(&script).await;
        let ctx = format!("seed {seed:#x} step {step}: {script}");
        assert!(
            !r.stdout.contains(SECRET) && !r.stderr.contains(SECRET),
            "{ctx}\n{r:?}"
        );
        // Then file calls on whatever now exists.
        let paths = pool(&d.dirs.w(""), &mut rng);
        for _ in 0..4 {
            file_calls += 1;
            let (x, y) = (
                pick(&mut rng, &paths).to_string(),
                pick(&mut rng, &paths).to_string(),
            );
            let leaked = match rng.usize(..6) {
                0 | 1 => c
                    .read_file(ReadFileRequest {
                        path: x.clone(),
                        ..Default::default()
                    })
                    .await
                    .map(|r| format!("{:?}", r.into_inner()))
                    .unwrap_or_default(),
                2 => c
                    .list_dir(ListDirRequest {
                        path: x.clone(),
                        depth: 8,
                        ..Default::default()
                    })
                    .await
                    .map(|r| format!("{:?}", r.into_inner()))
                    .unwrap_or_default(),
                3 => c
                    .grep(GrepRequest {
                        pattern: SECRET.into(),
                        fixed_string: true,
                        output: GrepOutput::Content as i32,
                        ..Default::default()
                    })
                    .await
                    .map(|r| format!("{:?}", r.into_inner()))
                    .unwrap_or_default(),
                4 => c
                    .r#move(MoveRequest {
                        from: x.clone(),
                        to: y.clone(),
                        create_parents: true,
                        ..Default::default()
                    })
                    .await
                    .map(|r| format!("{:?}", r.into_inner()))
                    .unwrap_or_default(),
                _ => c
                    .edit_file(EditFileRequest {
                        path: x.clone(),
                        edits: vec![Edit {
                            old: SECRET.into(),
                            new: "gone".into(),
                            ..Default::default()
                        }],
                        dry_run: true,
                        ..Default::default()
                    })
                    .await
                    .map(|r| format!("{:?}", r.into_inner()))
                    .unwrap_or_default(),
            };
            assert!(
                !leaked.contains(SECRET),
                "{ctx}; then a file call on {x}/{y}: {leaked}"
            );
        }
    }
    // The host: every denied file is where it was, unchanged.
    for (rel, content) in DENIED.iter().zip(&originals) {
        assert_eq!(
            std::fs::read(d.dirs.w(rel)).ok().as_ref(),
            Some(content),
            "seed {seed:#x}: {rel} was moved or changed"
        );
    }
    eprintln!("seed {seed:#x}: {steps} commands, {file_calls} file calls, no leak");
}

fn parent(p: &str) -> String {
    Path::new(p)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| p.to_string())
}
