//! EditFile: exact string replacements in a UTF-8 text file, all or none.
//!
//! The edits are applied in order, each to the result of the previous one,
//! in memory; the file is then replaced once with the atomic writer, under
//! the same lock as the read, so nothing can slip in between. Each `old`
//! must occur exactly once unless `replace_all`. When `old` is not found and
//! the file uses CRLF line endings, `old`/`new` are retried with `\r\n` (a
//! common mismatch); otherwise the error points at the most similar line.

use super::Outcome;
use super::access::{check_hardlink, precheck, require};
use super::oserror::os_error;
use super::path::RelPath;
use super::resolve::{Follow, resolve};
use super::scan::{parse_expected_sha, sha256_hex};
use super::write::{Prepared, check_expected, writable_target};
use crate::error::{Reason, ToolError, ToolResult};
use crate::policy::{Access, Limits, WorkspacePolicy};
use crate::proto::{Edit, EditFileRequest, EditFileResponse};
use similar::TextDiff;
use std::collections::HashMap;

/// Line numbers listed for an ambiguous match.
const MAX_LISTED_MATCHES: usize = 20;
/// Characters of a line compared when looking for the nearest line.
const SIMILARITY_CHARS: usize = 400;

pub fn edit_file(
    ws: &WorkspacePolicy,
    limits: &Limits,
    req: &EditFileRequest,
) -> ToolResult<Outcome<EditFileResponse>> {
    let rel = RelPath::parse_entry_in(&ws.path, &req.path)?;
    if req.edits.is_empty() {
        return Err(ToolError::invalid(
            "no edits given; pass at least one {old, new} pair",
        ));
    }
    if let Some(i) = req.edits.iter().position(|e| e.old.is_empty()) {
        return Err(ToolError::invalid(format!(
            "edit {i} has an empty `old`; give the exact text to replace (use write_file to create a file)"
        ))
        .with("edit_index", i.to_string()));
    }
    let expected = parse_expected_sha(&req.expected_sha256).map_err(ToolError::invalid)?;
    precheck(ws, Access::Write, &rel.to_path_string())?;
    let res = resolve(ws, &rel, Follow::Last)?;
    // The diff shows content, so reading must be allowed too.
    require(ws, Access::Read, &res.lexical, &res.path(), false)?;
    if res.meta.is_none() {
        return Err(os_error("edit", &res.path(), rustix::io::Errno::NOENT));
    }
    let (path, rule) = writable_target(ws, &res, false)?;
    if let Some(meta) = &res.meta {
        check_hardlink(ws, meta, &path, Access::Read)?;
    }

    let prepared = Prepared::new(ws, &path)?;
    let Some(original) = prepared.read_existing(limits)? else {
        return Err(os_error("edit", &path, rustix::io::Errno::NOENT));
    };
    let previous_sha = sha256_hex(&original);
    if let Some(expected) = &expected {
        check_expected(&path, expected, Some(&previous_sha))?;
    }
    let Ok(original) = String::from_utf8(original) else {
        return Err(ToolError::invalid(format!(
            "`{path}` is not UTF-8 text; use write_file to replace it"
        ))
        .with("path", &path));
    };

    let mut text = original.clone();
    let mut replacements = Vec::with_capacity(req.edits.len());
    for (i, edit) in req.edits.iter().enumerate() {
        crate::cancel::check().map_err(|mut stopped| {
            // What was done goes into the record: nothing on disk.
            stopped.message = format!(
                "{} ({i} of the {} edits had been applied in memory; `{path}` was not changed)",
                stopped.message,
                req.edits.len()
            );
            stopped.with("edits_applied", i.to_string())
        })?;
        let (next, count) = apply(&text, edit, i, &path)?;
        text = next;
        replacements.push(count);
    }
    let new_size = text.len() as u64;
    if new_size > limits.max_write_bytes {
        return Err(ToolError::new(
            Reason::TooLarge,
            format!(
                "the edited file would be {new_size} bytes, more than the {}-byte write limit",
                limits.max_write_bytes
            ),
        )
        .with("path", &path));
    }
    let changed = text != original;
    if changed && !req.dry_run {
        prepared.commit(ws, text.as_bytes(), false)?;
    }
    Ok(Outcome::new(
        EditFileResponse {
            diff: unified_diff(&original, &text, &path, limits),
            sha256: sha256_hex(text.as_bytes()),
            previous_sha256: previous_sha,
            replacements,
            applied: changed && !req.dry_run,
            path,
            info: None,
        },
        rule,
    ))
}

/// Applies one edit; returns the new text and the number of replacements.
fn apply(text: &str, edit: &Edit, index: usize, path: &str) -> ToolResult<(String, u32)> {
    let (old, new) = match count(text, &edit.old) {
        0 => match crlf_variant(text, edit) {
            Some((old, new)) => (old, new),
            None => return Err(not_found(text, &edit.old, index, path)),
        },
        _ => (edit.old.clone(), edit.new.clone()),
    };
    let n = count(text, &old);
    if n > 1 && !edit.replace_all {
        return Err(ambiguous(text, &old, n, index, path));
    }
    let replaced = if edit.replace_all {
        text.replace(&old, &new)
    } else {
        text.replacen(&old, &new, 1)
    };
    Ok((replaced, u32::try_from(n).unwrap_or(u32::MAX)))
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

/// `old`/`new` with `\n` turned into `\r\n`, when the file uses CRLF and
/// that version of `old` is found.
fn crlf_variant(text: &str, edit: &Edit) -> Option<(String, String)> {
    if !edit.old.contains('\n') || edit.old.contains("\r\n") || !text.contains("\r\n") {
        return None;
    }
    let old = edit.old.replace('\n', "\r\n");
    (count(text, &old) > 0).then(|| (old, edit.new.replace("\r\n", "\n").replace('\n', "\r\n")))
}

fn not_found(text: &str, old: &str, index: usize, path: &str) -> ToolError {
    let mut err = ToolError::new(Reason::MatchNotFound, String::new())
        .with("path", path)
        .with("edit_index", index.to_string());
    let hint = match nearest_line(text, old) {
        Some((line, content)) => {
            err = err
                .with("nearest_line", line.to_string())
                .with("nearest_text", content.clone());
            format!(" The most similar line is {line}: `{content}`.")
        }
        None => String::new(),
    };
    err.message = format!(
        "edit {index}: the `old` text was not found in `{path}`{}.{hint} Read the file again and copy the text exactly, whitespace included",
        if index > 0 {
            " (after the earlier edits)"
        } else {
            ""
        }
    );
    err
}

fn ambiguous(text: &str, old: &str, n: usize, index: usize, path: &str) -> ToolError {
    let lines: Vec<String> = match_lines(text, old)
        .take(MAX_LISTED_MATCHES)
        .map(|l| l.to_string())
        .collect();
    ToolError::new(
        Reason::MatchAmbiguous,
        format!(
            "edit {index}: the `old` text occurs {n} times in `{path}` (lines {}); add surrounding lines to make it unique, or set replace_all",
            lines.join(", ")
        ),
    )
    .with("path", path)
    .with("edit_index", index.to_string())
    .with("matches", n.to_string())
    .with("lines", lines.join(","))
}

/// 1-based line numbers where `needle` starts.
fn match_lines<'a>(text: &'a str, needle: &'a str) -> impl Iterator<Item = usize> + 'a {
    let mut line = 1;
    let mut scanned = 0;
    text.match_indices(needle).map(move |(at, _)| {
        line += text[scanned..at].matches('\n').count();
        scanned = at;
        line
    })
}

/// The line most like the first non-blank line of `old`: an exact match
/// ignoring surrounding whitespace wins, otherwise the best character-bigram
/// (Dice) similarity.
fn nearest_line(text: &str, old: &str) -> Option<(usize, String)> {
    let wanted = old.lines().map(str::trim).find(|l| !l.is_empty())?;
    let wanted_grams = bigrams(wanted);
    let mut best: Option<(f64, usize, &str)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let score = if trimmed == wanted {
            2.0
        } else {
            dice(&wanted_grams, &bigrams(trimmed))
        };
        if best.is_none_or(|(s, _, _)| score > s) {
            best = Some((score, i + 1, line));
        }
    }
    best.filter(|(score, _, _)| *score > 0.0)
        .map(|(_, n, line)| (n, shorten(line, 200)))
}

fn bigrams(s: &str) -> HashMap<(char, char), u32> {
    let chars: Vec<char> = s.chars().take(SIMILARITY_CHARS).collect();
    let mut grams = HashMap::new();
    for pair in chars.windows(2) {
        *grams.entry((pair[0], pair[1])).or_insert(0) += 1;
    }
    grams
}

fn dice(a: &HashMap<(char, char), u32>, b: &HashMap<(char, char), u32>) -> f64 {
    let total: u32 = a.values().sum::<u32>() + b.values().sum::<u32>();
    if total == 0 {
        return 0.0;
    }
    let common: u32 = a
        .iter()
        .map(|(g, n)| (*n).min(b.get(g).copied().unwrap_or(0)))
        .sum();
    f64::from(2 * common) / f64::from(total)
}

fn shorten(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

/// A unified diff, cut to `max_read_bytes` at a character boundary.
fn unified_diff(old: &str, new: &str, path: &str, limits: &Limits) -> String {
    if old == new {
        return String::new();
    }
    let mut diff = TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(path, path)
        .to_string();
    let max = usize::try_from(limits.max_read_bytes).unwrap_or(usize::MAX);
    if diff.len() > max {
        let mut cut = max;
        while !diff.is_char_boundary(cut) {
            cut -= 1;
        }
        diff.truncate(cut);
        diff.push_str("\n... diff truncated\n");
    }
    diff
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::testutil::{Fixture, Rules};

    fn edit(old: &str, new: &str) -> Edit {
        Edit {
            old: old.to_string(),
            new: new.to_string(),
            replace_all: false,
        }
    }

    fn req(path: &str, edits: Vec<Edit>) -> EditFileRequest {
        EditFileRequest {
            path: path.to_string(),
            edits,
            ..Default::default()
        }
    }

    #[test]
    fn applies_edits_in_order_with_a_diff() {
        let fx = Fixture::new();
        fx.file("a.rs", "fn a() {}\nfn b() {}\n");
        let r = edit_file(
            &fx.ws,
            &fx.limits,
            &req(
                "a.rs",
                vec![edit("fn a()", "fn alpha()"), edit("alpha", "first")],
            ),
        )
        .unwrap()
        .response;
        assert!(r.applied);
        assert_eq!(r.replacements, [1, 1]);
        assert_eq!(fx.read("a.rs"), b"fn first() {}\nfn b() {}\n");
        assert!(r.diff.contains("-fn a() {}\n+fn first() {}"), "{}", r.diff);
        assert!(r.diff.starts_with("--- a.rs\n+++ a.rs"));
        assert_eq!(r.previous_sha256, sha256_hex(b"fn a() {}\nfn b() {}\n"));
        assert_eq!(r.sha256, sha256_hex(&fx.read("a.rs")));
        assert_eq!(fx.names(""), ["a.rs"]);
    }

    #[test]
    fn replace_all_dry_run_and_expected_sha() {
        let fx = Fixture::new();
        fx.file("a.txt", "x x x\n");
        let mut r = req(
            "a.txt",
            vec![Edit {
                replace_all: true,
                ..edit("x", "y")
            }],
        );
        r.dry_run = true;
        let out = edit_file(&fx.ws, &fx.limits, &r).unwrap().response;
        assert_eq!(
            (out.replacements.as_slice(), out.applied),
            ([3u32].as_slice(), false)
        );
        assert_eq!(fx.read("a.txt"), b"x x x\n");
        r.dry_run = false;
        r.expected_sha256 = sha256_hex(b"other");
        let err = edit_file(&fx.ws, &fx.limits, &r).unwrap_err();
        assert_eq!(err.reason, Reason::StaleContent);
        r.expected_sha256 = sha256_hex(b"x x x\n");
        edit_file(&fx.ws, &fx.limits, &r).unwrap();
        assert_eq!(fx.read("a.txt"), b"y y y\n");
    }

    #[test]
    fn match_errors_help_the_agent() {
        let fx = Fixture::new();
        fx.file("a.py", "def main():\n    print('hi')\n    print('hi')\n");
        let err = edit_file(
            &fx.ws,
            &fx.limits,
            &req("a.py", vec![edit("print('hi')", "x")]),
        )
        .unwrap_err();
        assert_eq!(err.reason, Reason::MatchAmbiguous);
        assert_eq!(err.metadata_value("matches"), Some("2"));
        assert_eq!(err.metadata_value("lines"), Some("2,3"));

        let err = edit_file(
            &fx.ws,
            &fx.limits,
            &req(
                "a.py",
                vec![edit("def main():", "def m():"), edit("print('hello')", "x")],
            ),
        )
        .unwrap_err();
        assert_eq!(err.reason, Reason::MatchNotFound);
        assert_eq!(err.metadata_value("edit_index"), Some("1"));
        assert_eq!(err.metadata_value("nearest_line"), Some("2"));
        // All or nothing: the first edit was not written.
        assert!(fx.read("a.py").starts_with(b"def main():"));
        let err = edit_file(&fx.ws, &fx.limits, &req("a.py", vec![edit("", "x")])).unwrap_err();
        assert_eq!(err.reason, Reason::InvalidArgument);
    }

    #[test]
    fn crlf_files_accept_lf_edits() {
        let fx = Fixture::new();
        fx.file("w.txt", "a\r\nb\r\nc\r\n");
        edit_file(
            &fx.ws,
            &fx.limits,
            &req("w.txt", vec![edit("a\nb", "x\ny")]),
        )
        .unwrap();
        assert_eq!(fx.read("w.txt"), b"x\r\ny\r\nc\r\n");
    }

    #[test]
    fn refusals() {
        let fx = Fixture::with_rules(Rules {
            write: &["src/**"],
            ..Rules::default()
        });
        fx.file("README", "x");
        fx.file("src/bin.dat", b"\xff\xfe");
        fx.file(".env", "x");
        for (p, reason) in [
            ("README", Reason::PolicyDenied),
            ("src/bin.dat", Reason::InvalidArgument),
            (".env", Reason::PolicyDenied),
            ("src/missing", Reason::NotFound),
            ("src", Reason::IsADirectory),
        ] {
            let err = edit_file(&fx.ws, &fx.limits, &req(p, vec![edit("x", "y")])).unwrap_err();
            assert_eq!(err.reason, reason, "{p}");
        }
    }
}
