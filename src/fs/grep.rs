//! Grep: a regex (or literal) search over one file or the files below a
//! directory, with `grep-searcher`.
//!
//! Files come from the shared walker (so the same things are hidden as in
//! ListDir) and each is opened from the root handle by its canonical path
//! (`openat2`, no symlinks) and handed to the searcher as an open `File`:
//! the searcher never sees a host path. Binary files (a NUL byte in what
//! the searcher has read) are skipped, as ripgrep does. Files over
//! `max_file_bytes`, and lines over 8 MiB, are skipped too. In CONTENT
//! output each line's text is cut to 2000 bytes, and the whole answer to
//! `max_read_bytes` of text.

use super::access::{check_hardlink, precheck, require};
use super::meta::Kind;
use super::ordered;
use super::oserror::os_error;
use super::path::RelPath;
use super::resolve::{Follow, not_regular, open_regular, resolve};
use super::walk::{Entry, Filter, Flow, Start, WalkOptions, walk};
use super::{MAX_SCAN_ENTRIES, Outcome};
use crate::error::{ToolError, ToolResult};
use crate::policy::compile::compile_glob;
use crate::policy::{Access, Limits, WorkspacePolicy};
use crate::proto::{GrepCount, GrepLine, GrepOutput, GrepRequest, GrepResponse};
use grep_regex::{RegexMatcher, RegexMatcherBuilder};
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder, Sink, SinkContext, SinkMatch};

pub const DEFAULT_MAX_RESULTS: usize = 1000;
pub const MAX_RESULTS_CAP: usize = 10_000;
/// Longest line text returned in CONTENT output, in bytes.
pub const MAX_LINE_TEXT_BYTES: usize = 2000;
/// Most context lines on either side of a match.
const MAX_CONTEXT_LINES: u32 = 100;
/// The searcher's buffer never grows past this (bounds memory on a file
/// that is one enormous line).
const SEARCH_HEAP_LIMIT: usize = 8 * 1024 * 1024;

pub fn grep(
    ws: &WorkspacePolicy,
    limits: &Limits,
    req: &GrepRequest,
) -> ToolResult<Outcome<GrepResponse>> {
    let output = match GrepOutput::try_from(req.output) {
        Ok(GrepOutput::Unspecified) => GrepOutput::Files,
        Ok(o) => o,
        Err(_) => {
            return Err(ToolError::invalid(format!(
                "unknown output {}; use FILES, CONTENT or COUNT",
                req.output
            )));
        }
    };
    let matcher = RegexMatcherBuilder::new()
        .case_insensitive(req.case_insensitive)
        .fixed_strings(req.fixed_string)
        .line_terminator(Some(b'\n'))
        .size_limit(crate::limits::REGEX_SIZE_LIMIT)
        .dfa_size_limit(crate::limits::REGEX_DFA_SIZE_LIMIT)
        .build(&req.pattern)
        .map_err(|e| {
            ToolError::invalid(format!(
                "pattern is not a valid regex: {e}; fix it, or set fixed_string to search for it literally"
            ))
        })?;
    let file_filter = if req.glob.is_empty() {
        None
    } else {
        Some(
            compile_glob(&req.glob)
                .map_err(|e| ToolError::invalid(format!("glob `{}` is not valid: {e}", req.glob)))?
                .compile_matcher(),
        )
    };
    let mut searchers = SearcherBuilder::new();
    searchers
        .binary_detection(BinaryDetection::quit(0))
        .line_number(true)
        .before_context(req.context_before.min(MAX_CONTEXT_LINES) as usize)
        .after_context(req.context_after.min(MAX_CONTEXT_LINES) as usize)
        .heap_limit(Some(SEARCH_HEAP_LIMIT));
    let mut state = State {
        output,
        max: match req.max_results {
            0 => DEFAULT_MAX_RESULTS,
            n => usize::try_from(n)
                .unwrap_or(MAX_RESULTS_CAP)
                .min(MAX_RESULTS_CAP),
        },
        text_budget: usize::try_from(limits.max_read_bytes).unwrap_or(usize::MAX),
        response: GrepResponse::default(),
    };
    let wanted = |rel: &str, name: &str| {
        file_filter
            .as_ref()
            .is_none_or(|f| f.is_match(rel) || f.is_match(name))
    };
    let new_searcher = || searchers.build();

    let rel = RelPath::parse_in(&ws.path, &req.path)?;
    precheck(ws, Access::Read, &rel.to_path_string())?;
    let res = resolve(ws, &rel, Follow::Last)?;
    let path = res.path();
    let rule = match res.kind() {
        Some(Kind::Dir) => {
            let rule = require(ws, Access::Read, &res.lexical, &path, true)?;
            let opts = WalkOptions {
                max_depth: usize::MAX,
                filter: Filter::Agent {
                    include_hidden: req.include_hidden,
                    respect_gitignore: req.respect_gitignore.unwrap_or(true),
                },
                max_entries: MAX_SCAN_ENTRIES,
            };
            let start = Start {
                canonical: &path,
                lexical: &res.lexical,
            };
            let files = |e: &Entry<'_>| e.kind == Kind::File && wanted(e.rel, e.name);
            let stats = if output == GrepOutput::Content {
                // One thread: CONTENT answers are capped by lines and
                // bytes, usually reached within the first few files.
                let mut searcher = new_searcher();
                walk(ws, &start, &opts, |e| {
                    if !files(e) {
                        return Ok(Flow::Continue);
                    }
                    let found = search_file(
                        ws,
                        limits,
                        &mut searcher,
                        &matcher,
                        e.path,
                        output,
                        Some(&mut state),
                    );
                    Ok(add_file(&mut state, e.path, found))
                })?
            } else {
                // FILES and COUNT: every core searches, the answer is
                // taken in walk order (the same as on one thread).
                ordered::map_in_order(
                    ordered::workers(),
                    new_searcher,
                    |searcher, path: String| {
                        let found =
                            search_file(ws, limits, searcher, &matcher, &path, output, None);
                        (path, found)
                    },
                    |(path, found)| add_file(&mut state, &path, found),
                    |feed| {
                        walk(ws, &start, &opts, |e| {
                            if !files(e) {
                                return Ok(Flow::Continue);
                            }
                            Ok(feed.push(e.path.to_string()))
                        })
                    },
                )?
            };
            if stats.truncated {
                state.response.truncated = true;
            }
            rule
        }
        Some(Kind::File) => {
            let rule = require(ws, Access::Read, &res.lexical, &path, false)?;
            let name = path.rsplit('/').next().unwrap_or(&path).to_string();
            if wanted(&name, &name) {
                let mut searcher = new_searcher();
                let content = (output == GrepOutput::Content).then_some(&mut state);
                let found =
                    search_file(ws, limits, &mut searcher, &matcher, &path, output, content);
                add_file(&mut state, &path, found);
            }
            rule
        }
        Some(kind) => return Err(not_regular(&path, kind)),
        None => return Err(os_error("search", &path, rustix::io::Errno::NOENT)),
    };
    // A search cut short by a stop answers as stopped, not with part of
    // its results.
    crate::cancel::check()?;
    Ok(Outcome::new(state.response, rule))
}

/// A file read that fails once the call must stop, so a costly pattern
/// over a large file ends within one buffer of the client going away or
/// the deadline passing, not at the end of the file.
struct StopCheckedRead<'a>(&'a std::fs::File);

impl std::io::Read for StopCheckedRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        crate::cancel::check().map_err(|e| std::io::Error::other(e.message))?;
        std::io::Read::read(&mut self.0, buf)
    }
}

struct State {
    output: GrepOutput,
    max: usize,
    /// Bytes of line text CONTENT output may still carry.
    text_budget: usize,
    response: GrepResponse,
}

/// What searching one file found, before it joins the answer.
#[derive(Debug, Clone, Copy, Default)]
struct Found {
    /// The file was opened and searched (not skipped).
    searched: bool,
    matches: u64,
    /// CONTENT output filled up in this file: the search ends here.
    full: bool,
}

/// Searches one file. CONTENT lines go straight into `content`'s answer
/// (so its caps hold line by line); FILES and COUNT only count matches.
fn search_file(
    ws: &WorkspacePolicy,
    limits: &Limits,
    searcher: &mut Searcher,
    matcher: &RegexMatcher,
    path: &str,
    output: GrepOutput,
    content: Option<&mut State>,
) -> Found {
    // A file that cannot be opened safely (swapped for a symlink, a
    // hardlink from outside, grown too large) is skipped, not fatal.
    let Ok((file, meta)) = open_regular(ws, path) else {
        return Found::default();
    };
    if meta.size > limits.max_file_bytes || check_hardlink(ws, &meta, path, Access::Read).is_err() {
        return Found::default();
    }
    let mut sink = FileSink {
        path,
        output,
        content,
        matches: 0,
        full: false,
    };
    // An I/O error or an over-long line ends this file's search only; a
    // stopped call ends it at the next buffer (the walk then stops too).
    let _ = searcher.search_reader(matcher, StopCheckedRead(&file), &mut sink);
    Found {
        searched: true,
        matches: sink.matches,
        full: sink.full,
    }
}

/// Adds one file's findings to the answer, in walk order; `Stop` when the
/// answer is full and the walk should end.
fn add_file(state: &mut State, path: &str, found: Found) -> Flow {
    if !found.searched {
        return Flow::Continue;
    }
    state.response.files_searched += 1;
    if found.full {
        state.response.truncated = true;
        return Flow::Stop;
    }
    if found.matches == 0 {
        return Flow::Continue;
    }
    let response = &mut state.response;
    match state.output {
        GrepOutput::Count => {
            if response.counts.len() >= state.max {
                response.truncated = true;
                return Flow::Stop;
            }
            response.counts.push(GrepCount {
                path: path.to_string(),
                count: found.matches,
            });
        }
        GrepOutput::Content => {}
        _ => {
            if response.files.len() >= state.max {
                response.truncated = true;
                return Flow::Stop;
            }
            response.files.push(path.to_string());
        }
    }
    Flow::Continue
}

struct FileSink<'a> {
    path: &'a str,
    output: GrepOutput,
    /// The answer CONTENT lines go to; None for FILES and COUNT.
    content: Option<&'a mut State>,
    matches: u64,
    /// CONTENT output is full: stop everything.
    full: bool,
}

impl FileSink<'_> {
    fn push_line(&mut self, line_number: Option<u64>, bytes: &[u8], is_match: bool) -> bool {
        let Some(state) = self.content.as_deref_mut() else {
            return true;
        };
        let text = line_text(bytes);
        if state.response.lines.len() >= state.max || text.len() > state.text_budget {
            self.full = true;
            return false;
        }
        state.text_budget -= text.len();
        state.response.lines.push(GrepLine {
            path: self.path.to_string(),
            line_number: line_number.unwrap_or(0),
            text,
            is_match,
        });
        true
    }
}

impl Sink for FileSink<'_> {
    type Error = std::io::Error;

    fn matched(&mut self, _: &Searcher, mat: &SinkMatch<'_>) -> Result<bool, Self::Error> {
        self.matches += 1;
        match self.output {
            GrepOutput::Content => Ok(self.push_line(mat.line_number(), mat.bytes(), true)),
            GrepOutput::Count => Ok(true),
            // One match is enough to list the file.
            _ => Ok(false),
        }
    }

    fn context(&mut self, _: &Searcher, ctx: &SinkContext<'_>) -> Result<bool, Self::Error> {
        if self.output == GrepOutput::Content {
            return Ok(self.push_line(ctx.line_number(), ctx.bytes(), false));
        }
        Ok(true)
    }
}

/// A line without its terminator, as UTF-8 (lossy), cut to
/// [`MAX_LINE_TEXT_BYTES`] at a character boundary.
fn line_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    if text.len() > MAX_LINE_TEXT_BYTES {
        let mut cut = MAX_LINE_TEXT_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Reason;
    use crate::fs::testutil::Fixture;
    use std::os::unix::fs::symlink;

    fn req(pattern: &str, output: GrepOutput) -> GrepRequest {
        GrepRequest {
            pattern: pattern.to_string(),
            output: output as i32,
            ..Default::default()
        }
    }

    fn fixture() -> Fixture {
        let fx = Fixture::new();
        fx.file("src/a.rs", "fn main() {\n    let token = 1;\n}\n");
        fx.file("src/b.rs", "// TOKEN here\n");
        fx.file("notes.txt", "token in notes\n");
        fx.file(".env", "token=secret\n");
        fx.file("conf/.env", "token=secret\n");
        fx.file("target/gen.rs", "token\n");
        fx.file(".gitignore", "target/\n");
        fx.file("bin.dat", b"token\0binary");
        std::fs::write(fx.outside("o.txt"), "token outside\n").unwrap();
        symlink(fx.outside("o.txt"), fx.abs("src/link.rs")).unwrap();
        symlink(fx.outside(""), fx.abs("outdir")).unwrap();
        fx
    }

    #[test]
    fn files_content_and_count() {
        let fx = fixture();
        let r = grep(&fx.ws, &fx.limits, &req("token", GrepOutput::Unspecified))
            .unwrap()
            .response;
        // Ignored, denied, hidden, binary and symlinked files are skipped.
        let mut files = r.files.clone();
        files.sort();
        assert_eq!(files, ["notes.txt", "src/a.rs"]);

        let mut q = req("token", GrepOutput::Content);
        q.case_insensitive = true;
        q.glob = "*.rs".into();
        q.context_after = 1;
        let r = grep(&fx.ws, &fx.limits, &q).unwrap().response;
        let lines: Vec<(&str, u64, &str, bool)> = r
            .lines
            .iter()
            .map(|l| (l.path.as_str(), l.line_number, l.text.as_str(), l.is_match))
            .collect();
        assert_eq!(
            lines,
            [
                ("src/a.rs", 2, "    let token = 1;", true),
                ("src/a.rs", 3, "}", false),
                ("src/b.rs", 1, "// TOKEN here", true),
            ]
        );

        let mut q = req("t.ken", GrepOutput::Count);
        q.path = "src".into();
        let r = grep(&fx.ws, &fx.limits, &q).unwrap().response;
        assert_eq!(r.counts.len(), 1);
        assert_eq!(
            (r.counts[0].path.as_str(), r.counts[0].count),
            ("src/a.rs", 1)
        );
        assert_eq!(r.files_searched, 2);
    }

    #[test]
    fn options_and_single_files() {
        let fx = fixture();
        let mut q = req("token", GrepOutput::Files);
        q.respect_gitignore = Some(false);
        let r = grep(&fx.ws, &fx.limits, &q).unwrap().response;
        assert!(r.files.contains(&"target/gen.rs".to_string()));
        let mut q = req("(", GrepOutput::Files);
        q.fixed_string = true;
        q.path = "src/a.rs".into();
        let r = grep(&fx.ws, &fx.limits, &q).unwrap().response;
        assert_eq!(r.files, ["src/a.rs"]);
        let mut q = req("token", GrepOutput::Content);
        q.max_results = 1;
        let r = grep(&fx.ws, &fx.limits, &q).unwrap().response;
        assert_eq!((r.lines.len(), r.truncated), (1, true));
    }

    #[test]
    fn a_capped_search_stops_at_the_cap_in_walk_order() {
        let fx = Fixture::new();
        for f in ["z.txt", "a/d.txt", "a/b/c.txt", "a/b/e.txt"] {
            fx.file(f, "hit one\nhit two\n");
        }
        let mut q = req("hit", GrepOutput::Content);
        q.max_results = 3;
        let r = grep(&fx.ws, &fx.limits, &q).unwrap().response;
        let got: Vec<(&str, u64)> = r
            .lines
            .iter()
            .map(|l| (l.path.as_str(), l.line_number))
            .collect();
        assert_eq!(got, [("z.txt", 1), ("z.txt", 2), ("a/d.txt", 1)]);
        assert!(r.truncated);
        assert_eq!(r.files_searched, 2, "no file opened past the cap");

        let mut q = req("hit", GrepOutput::Files);
        q.max_results = 2;
        let r = grep(&fx.ws, &fx.limits, &q).unwrap().response;
        assert_eq!(
            (r.files.as_slice(), r.truncated),
            (&["z.txt".to_string(), "a/d.txt".to_string()][..], true)
        );
        assert_eq!(r.files_searched, 3, "one more file to know there is more");
    }

    #[test]
    fn refusals() {
        let fx = fixture();
        let err = grep(&fx.ws, &fx.limits, &req("(", GrepOutput::Files)).unwrap_err();
        assert_eq!(err.reason, Reason::InvalidArgument);
        for (path, reason) in [
            (".env", Reason::PolicyDenied),
            ("conf/../.env", Reason::PolicyDenied),
            ("src/link.rs", Reason::SymlinkEscape),
            ("outdir", Reason::SymlinkEscape),
            ("missing", Reason::NotFound),
        ] {
            let mut q = req("token", GrepOutput::Files);
            q.path = path.into();
            let err = grep(&fx.ws, &fx.limits, &q).unwrap_err();
            assert_eq!(err.reason, reason, "{path}");
        }
    }

    #[test]
    fn files_and_counts_from_many_threads_come_in_walk_order_with_an_exact_cap() {
        let fx = Fixture::new();
        for i in 0..400 {
            let text = if i % 3 == 0 { "x\nhit\nhit\n" } else { "x\n" };
            fx.file(&format!("t/d{}/e{}/f{i:03}.txt", i % 7, i % 3), text);
        }
        // The order is the walk's: every file in walk order, then the hits.
        let mut walked = Vec::new();
        let start = Start {
            canonical: "t",
            lexical: "t",
        };
        let opts = WalkOptions {
            max_depth: usize::MAX,
            filter: Filter::Agent {
                include_hidden: false,
                respect_gitignore: true,
            },
            max_entries: MAX_SCAN_ENTRIES,
        };
        walk(&fx.ws, &start, &opts, |e| {
            if e.kind == Kind::File {
                walked.push(e.path.to_string());
            }
            Ok(Flow::Continue)
        })
        .unwrap();
        let hits: Vec<&String> = walked.iter().filter(|p| hit_index(p) % 3 == 0).collect();
        assert_eq!(hits.len(), 134);

        let mut q = req("hit", GrepOutput::Files);
        q.path = "t".into();
        q.max_results = 50;
        let r = grep(&fx.ws, &fx.limits, &q).unwrap().response;
        assert_eq!(
            r.files,
            hits[..50].iter().map(|p| p.as_str()).collect::<Vec<_>>()
        );
        assert!(r.truncated);
        // Counted up to the file that showed there is more, as one thread does.
        let more = walked.iter().position(|p| p == hits[50]).unwrap() + 1;
        assert_eq!(r.files_searched, more as u64);

        let mut q = req("hit", GrepOutput::Count);
        q.path = "t".into();
        q.max_results = 1000;
        let r = grep(&fx.ws, &fx.limits, &q).unwrap().response;
        let counted: Vec<(&str, u64)> = r
            .counts
            .iter()
            .map(|c| (c.path.as_str(), c.count))
            .collect();
        assert_eq!(
            counted,
            hits.iter().map(|p| (p.as_str(), 2)).collect::<Vec<_>>()
        );
        assert_eq!((r.truncated, r.files_searched), (false, 400));
    }

    fn hit_index(path: &str) -> usize {
        let name = path.rsplit('/').next().unwrap();
        name[1..4].parse().unwrap()
    }

    #[test]
    fn long_lines_are_cut_at_char_boundaries() {
        let text = line_text("é".repeat(1500).as_bytes());
        assert!(text.len() <= MAX_LINE_TEXT_BYTES + '…'.len_utf8());
        assert!(text.ends_with('…'));
        assert_eq!(line_text(b"abc\r\n"), "abc");
    }
}
