//! Running one tool call: arguments checked against the tool's type, the
//! paths mapped (`paths`), the daemon called over its socket, and the answer
//! turned into text a model can read. Every decision stays the daemon's.

mod sessions;

use super::daemon::Daemon;
use super::grants::Grants;
use super::paths::{Target, resolve};
use super::render::{self, size};
use super::terminals::Terminals;
use super::tools::*;
use crate::proto::*;
use base64::Engine as _;
use globset::{Glob, GlobSet, GlobSetBuilder};
use rmcp::model::{CallToolResult, ContentBlock, JsonObject};
use serde::de::DeserializeOwned;
use std::time::{Duration, UNIX_EPOCH};
use tonic::Status;

/// Entries `directory_tree` and the listings gather at most.
const MAX_LISTED: usize = 10_000;
/// Depth `directory_tree` walks to.
const TREE_DEPTH: u32 = 32;
/// Default `grep` cap, small enough for a model's context.
const GREP_DEFAULT_RESULTS: u32 = 200;
/// Bytes of each of stdout and stderr a command's result keeps (head and
/// tail), so one noisy command does not fill a model's context; the policy's
/// budget still caps it.
const COMMAND_OUTPUT_BUDGET: u64 = 16 * 1024;

type Outcome = Result<CallToolResult, Failure>;

/// Why a call ended without a result: the daemon refused, or the arguments
/// were wrong before anything was sent.
enum Failure {
    Daemon(Status),
    Usage(String),
}

impl From<Status> for Failure {
    fn from(s: Status) -> Self {
        Failure::Daemon(s)
    }
}

pub async fn call(
    daemon: &Daemon,
    grants: &Grants,
    terminals: &Terminals,
    kind: Kind,
    args: Option<JsonObject>,
) -> CallToolResult {
    let call = Call {
        daemon,
        grants,
        terminals,
    };
    let args = serde_json::Value::Object(args.unwrap_or_default());
    match dispatch(&call, kind, args).await {
        Ok(result) => result,
        Err(Failure::Daemon(s)) => render::status(&s, daemon.socket()),
        Err(Failure::Usage(m)) => render::usage(m),
    }
}

async fn dispatch(call: &Call<'_>, kind: Kind, args: serde_json::Value) -> Outcome {
    match kind {
        Kind::ReadTextFile => call.read_text_file(parse(args)?).await,
        Kind::ReadMediaFile => call.read_media_file(parse(args)?).await,
        Kind::ReadMultipleFiles => call.read_multiple_files(parse(args)?).await,
        Kind::WriteFile => call.write_file(parse(args)?).await,
        Kind::EditFile => call.edit_file(parse(args)?).await,
        Kind::CreateDirectory => call.create_directory(parse(args)?).await,
        Kind::ListDirectory => call.list_directory(parse(args)?).await,
        Kind::ListDirectoryWithSizes => call.list_with_sizes(parse(args)?).await,
        Kind::DirectoryTree => call.directory_tree(parse(args)?).await,
        Kind::MoveFile => call.move_file(parse(args)?).await,
        Kind::SearchFiles => call.search_files(parse(args)?).await,
        Kind::GetFileInfo => call.get_file_info(parse(args)?).await,
        Kind::ListAllowedDirectories => call.list_allowed(parse(args)?).await,
        Kind::Grep => call.grep(parse(args)?).await,
        Kind::RunCommand => call.run_command(parse(args)?).await,
        Kind::ExecCommand => call.exec_command(parse(args)?).await,
        Kind::WriteStdin => call.write_stdin(parse(args)?).await,
        Kind::StartProcess => call.start_process(parse(args)?).await,
        Kind::ReadProcessOutput => call.read_process_output(parse(args)?).await,
        Kind::KillProcess => call.kill_process(parse(args)?).await,
    }
}

/// Arguments as the tool's type; a mismatch names the field and is
/// answered as a tool error, as the rest are.
fn parse<T: DeserializeOwned>(args: serde_json::Value) -> Result<T, Failure> {
    serde_json::from_value(args)
        .map_err(|e| Failure::Usage(format!("{e}; see the tool's input schema")))
}

struct Call<'a> {
    daemon: &'a Daemon,
    grants: &'a Grants,
    /// This MCP session's daemon sessions and processes.
    terminals: &'a Terminals,
}

impl Call<'_> {
    fn target(&self, path: &str) -> Target {
        resolve(self.grants, path)
    }

    /// How to show a workspace-relative path back: relative in the default
    /// workspace, otherwise the host path (which maps back on input).
    fn shown(&self, workspace: &str, rel: &str) -> String {
        if workspace.is_empty() {
            return if rel.is_empty() {
                ".".into()
            } else {
                rel.into()
            };
        }
        match self.grants.workspaces.iter().find(|w| w.name == workspace) {
            Some(w) => w.path.join(rel).display().to_string(),
            None => rel.into(),
        }
    }

    async fn read_text(
        &self,
        path: &str,
        window: Option<LineWindow>,
    ) -> Result<ReadFileResponse, Failure> {
        let t = self.target(path);
        let r = self
            .daemon
            .client()
            .read_file(ReadFileRequest {
                workspace: t.workspace,
                path: t.path,
                window: window.map(read_file_request::Window::Lines),
                max_bytes: 0,
            })
            .await?
            .into_inner();
        if r.is_binary {
            return Err(Failure::Usage(format!(
                "{path} is a binary file: read it with read_media_file (images, audio)"
            )));
        }
        Ok(r)
    }

    async fn read_text_file(&self, a: ReadTextFileArgs) -> Outcome {
        let window = match (a.head, a.tail) {
            (Some(_), Some(_)) => {
                return Err(Failure::Usage("give head or tail, not both".into()));
            }
            (Some(n), None) => Some(LineWindow {
                offset: 0,
                limit: n.max(1),
            }),
            (None, Some(n)) => {
                let probe = self
                    .read_text(
                        &a.path,
                        Some(LineWindow {
                            offset: 0,
                            limit: 1,
                        }),
                    )
                    .await?;
                Some(LineWindow {
                    offset: probe.total_lines.saturating_sub(n),
                    limit: n.max(1),
                })
            }
            (None, None) => None,
        };
        let asked_for_a_window = window.is_some();
        let r = self.read_text(&a.path, window).await?;
        let mut text = r.text.clone();
        // A window the caller chose is no surprise; a cut whole-file read is.
        if r.truncated && !asked_for_a_window {
            let first = r.offset + 1;
            let last = r.offset + r.lines_returned;
            text.push_str(&format!(
                "\n[cut: lines {first}-{last} of {} shown ({} of the file); read the rest with \
                 tail, or search it with grep]",
                r.total_lines,
                size(r.total_bytes)
            ));
        }
        Ok(render::text(text))
    }

    async fn read_media_file(&self, a: PathArgs) -> Outcome {
        let mime = mime_guess::from_path(&a.path).first_or_octet_stream();
        let kind = mime.type_();
        if kind != mime_guess::mime::IMAGE && kind != mime_guess::mime::AUDIO {
            return Err(Failure::Usage(format!(
                "{} is not an image or audio file ({mime}): read text with read_text_file",
                a.path
            )));
        }
        let t = self.target(&a.path);
        let r = self
            .daemon
            .client()
            .read_file(ReadFileRequest {
                workspace: t.workspace,
                path: t.path,
                window: Some(read_file_request::Window::Bytes(ByteWindow {
                    offset: 0,
                    limit: 0,
                })),
                max_bytes: 0,
            })
            .await?
            .into_inner();
        if r.truncated {
            return Err(Failure::Usage(format!(
                "{} is {}, more than the policy lets one read return; it cannot be sent whole",
                a.path,
                size(r.total_bytes)
            )));
        }
        let bytes = if r.is_binary {
            r.data
        } else {
            r.text.into_bytes().into()
        };
        let data = base64::engine::general_purpose::STANDARD.encode(bytes);
        let block = if kind == mime_guess::mime::IMAGE {
            ContentBlock::image(data, mime.essence_str())
        } else {
            ContentBlock::audio(data, mime.essence_str())
        };
        Ok(CallToolResult::success(vec![block]))
    }

    async fn read_multiple_files(&self, a: ReadMultipleFilesArgs) -> Outcome {
        if a.paths.is_empty() {
            return Err(Failure::Usage("paths must name at least one file".into()));
        }
        let mut parts = Vec::with_capacity(a.paths.len());
        let mut failed = 0;
        for path in &a.paths {
            match self
                .read_text_file(ReadTextFileArgs {
                    path: path.clone(),
                    head: None,
                    tail: None,
                })
                .await
            {
                Ok(r) => parts.push(format!("{path}:\n{}", first_text(&r))),
                Err(e) => {
                    failed += 1;
                    let r = match e {
                        Failure::Daemon(s) => render::status(&s, self.daemon.socket()),
                        Failure::Usage(m) => render::usage(m),
                    };
                    parts.push(format!("{path}: Error - {}", first_text(&r)));
                }
            }
        }
        let text = parts.join("\n---\n");
        Ok(if failed == a.paths.len() {
            render::error(text)
        } else {
            render::text(text)
        })
    }

    async fn write_file(&self, a: WriteFileArgs) -> Outcome {
        let t = self.target(&a.path);
        let r = self
            .daemon
            .client()
            .write_file(WriteFileRequest {
                workspace: t.workspace,
                path: t.path,
                content: a.content.into_bytes(),
                mode: WriteMode::Upsert as i32,
                create_parents: true,
                expected_sha256: String::new(),
                idempotency_key: String::new(),
            })
            .await?
            .into_inner();
        let verb = if r.created { "Created" } else { "Wrote" };
        Ok(render::text(format!(
            "{verb} {} ({} bytes, sha256 {})",
            a.path, r.bytes_written, r.sha256
        )))
    }

    async fn edit_file(&self, a: EditFileArgs) -> Outcome {
        let t = self.target(&a.path);
        let r = self
            .daemon
            .client()
            .edit_file(EditFileRequest {
                workspace: t.workspace,
                path: t.path,
                edits: a
                    .edits
                    .into_iter()
                    .map(|e| Edit {
                        old: e.old_text,
                        new: e.new_text,
                        replace_all: false,
                    })
                    .collect(),
                dry_run: a.dry_run,
                expected_sha256: String::new(),
                idempotency_key: String::new(),
            })
            .await?
            .into_inner();
        let head = if r.applied {
            format!("Edited {}", a.path)
        } else {
            format!("Dry run: {} not changed; the edit would be", a.path)
        };
        Ok(render::text(format!("{head}:\n```diff\n{}```", r.diff)))
    }

    async fn create_directory(&self, a: PathArgs) -> Outcome {
        let t = self.target(&a.path);
        let r = self
            .daemon
            .client()
            .make_dir(MakeDirRequest {
                workspace: t.workspace,
                path: t.path,
                parents: true,
                idempotency_key: String::new(),
            })
            .await?
            .into_inner();
        let what = if r.created {
            "Created"
        } else {
            "Already there:"
        };
        Ok(render::text(format!("{what} {}", a.path)))
    }

    /// Every entry below `path` to `depth`, all pages, sorted by path.
    async fn list(&self, path: &str, depth: u32) -> Result<(Target, Vec<DirEntry>, bool), Failure> {
        let t = self.target(path);
        let mut entries = Vec::new();
        let mut page_token = String::new();
        let mut cut = false;
        loop {
            let r = self
                .daemon
                .client()
                .list_dir(ListDirRequest {
                    workspace: t.workspace.clone(),
                    path: t.path.clone(),
                    depth,
                    include_hidden: true,
                    respect_gitignore: Some(false),
                    sort: SortOrder::Name as i32,
                    max_entries: 1000,
                    page_token,
                })
                .await?
                .into_inner();
            entries.extend(r.entries);
            cut |= r.scan_truncated;
            if r.next_page_token.is_empty() {
                break;
            }
            if entries.len() >= MAX_LISTED {
                cut = true;
                break;
            }
            page_token = r.next_page_token;
        }
        Ok((t, entries, cut))
    }

    async fn list_directory(&self, a: PathArgs) -> Outcome {
        let (_, entries, cut) = self.list(&a.path, 1).await?;
        let mut lines: Vec<String> = entries
            .iter()
            .map(|e| format!("{} {}", marker(e), name_of(e)))
            .collect();
        if lines.is_empty() {
            lines.push("(empty directory)".into());
        }
        if cut {
            lines.push(format!("[cut at {} entries]", entries.len()));
        }
        Ok(render::text(lines.join("\n")))
    }

    async fn list_with_sizes(&self, a: ListWithSizesArgs) -> Outcome {
        let (_, mut entries, cut) = self.list(&a.path, 1).await?;
        if let SortBy::Size = a.sort_by {
            entries.sort_by_key(|e| std::cmp::Reverse(e.size));
        }
        let mut lines = Vec::new();
        let (mut files, mut dirs, mut total) = (0, 0, 0);
        for e in &entries {
            if is_dir(e) {
                dirs += 1;
                lines.push(format!("{} {}", marker(e), name_of(e)));
            } else {
                files += 1;
                total += e.size;
                lines.push(format!(
                    "{} {:<40} {:>10}",
                    marker(e),
                    name_of(e),
                    size(e.size)
                ));
            }
        }
        lines.push(String::new());
        lines.push(format!("Total: {files} files, {dirs} directories"));
        lines.push(format!("Combined size: {}", size(total)));
        if cut {
            lines.push(format!("[cut at {} entries]", entries.len()));
        }
        Ok(render::text(lines.join("\n")))
    }

    async fn directory_tree(&self, a: DirectoryTreeArgs) -> Outcome {
        let excludes = globs(&a.exclude_patterns)?;
        let (_, entries, cut) = self.list(&a.path, TREE_DEPTH).await?;
        let mut root: Vec<serde_json::Value> = Vec::new();
        for e in &entries {
            let rel = relative_to_listed(e);
            if excluded(&excludes, &rel) {
                continue;
            }
            insert(&mut root, &rel, is_dir(e));
        }
        let mut text = serde_json::to_string_pretty(&root).unwrap_or_default();
        if cut {
            text.push_str(&format!(
                "\n[cut at {} entries: list a subdirectory for the rest]",
                entries.len()
            ));
        }
        Ok(render::text(text))
    }

    async fn move_file(&self, a: MoveFileArgs) -> Outcome {
        let from = self.target(&a.source);
        let to = self.target(&a.destination);
        if from.workspace != to.workspace {
            return Err(Failure::Usage(
                "source and destination are in different workspaces: move within one, or \
                 read and write the file instead"
                    .into(),
            ));
        }
        self.daemon
            .client()
            .r#move(MoveRequest {
                workspace: from.workspace,
                from: from.path,
                to: to.path,
                overwrite: false,
                create_parents: false,
                idempotency_key: String::new(),
            })
            .await?;
        Ok(render::text(format!(
            "Moved {} to {}",
            a.source, a.destination
        )))
    }

    async fn search_files(&self, a: SearchFilesArgs) -> Outcome {
        let excludes = globs(&a.exclude_patterns)?;
        let t = self.target(&a.path);
        let r = self
            .daemon
            .client()
            .glob(GlobRequest {
                workspace: t.workspace.clone(),
                pattern: a.pattern.clone(),
                path: t.path.clone(),
                include_hidden: true,
                respect_gitignore: Some(false),
                max_results: 1000,
                sort: SortOrder::Name as i32,
            })
            .await?
            .into_inner();
        let base = std::path::Path::new(&t.path);
        let mut found: Vec<String> = r
            .paths
            .iter()
            .filter(|p| {
                let rel = std::path::Path::new(p.as_str())
                    .strip_prefix(base)
                    .map(|r| r.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| p.to_string());
                !excluded(&excludes, &rel)
            })
            .map(|p| self.shown(&t.workspace, p))
            .collect();
        if found.is_empty() {
            found.push(format!("No matches for {} under {}", a.pattern, a.path));
        }
        if r.truncated {
            found.push("[cut at 1000 results: narrow the pattern]".into());
        }
        Ok(render::text(found.join("\n")))
    }

    async fn get_file_info(&self, a: PathArgs) -> Outcome {
        let t = self.target(&a.path);
        let r = self
            .daemon
            .client()
            .stat(StatRequest {
                workspace: t.workspace.clone(),
                path: t.path,
                no_follow: false,
            })
            .await?
            .into_inner();
        let kind = match EntryKind::try_from(r.kind) {
            Ok(EntryKind::Dir) => "directory",
            Ok(EntryKind::File) => "file",
            Ok(EntryKind::Symlink) => "symlink",
            _ => "other",
        };
        let mut lines = vec![
            format!("path: {}", self.shown(&t.workspace, &r.path)),
            format!("type: {kind}"),
            format!("size: {} ({})", r.size, size(r.size)),
        ];
        if let Some(m) = &r.mtime {
            let at = UNIX_EPOCH + Duration::new(m.seconds.max(0) as u64, m.nanos.max(0) as u32);
            lines.push(format!(
                "modified: {}",
                humantime::format_rfc3339_seconds(at)
            ));
        }
        lines.push(format!("permissions: {:o}", r.mode & 0o7777));
        lines.push(format!("readable: {}", r.readable));
        lines.push(format!("writable: {}", r.writable));
        if !r.symlink_target.is_empty() {
            lines.push(format!("symlink target: {}", r.symlink_target));
        }
        Ok(render::text(lines.join("\n")))
    }

    async fn list_allowed(&self, _: NoArgs) -> Outcome {
        // Fresh from the daemon: the policy may have been reloaded.
        let grants = self.daemon.grants().await?;
        let lines: Vec<String> = grants
            .workspaces
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let access = if w.read_only {
                    "read-only"
                } else {
                    "read-write"
                };
                let default = if i == 0 {
                    ", default, /workspace in commands"
                } else {
                    ""
                };
                format!(
                    "{} (workspace {}, {access}{default})",
                    w.path.display(),
                    w.name
                )
            })
            .collect();
        Ok(render::text(format!(
            "Allowed directories:\n{}",
            lines.join("\n")
        )))
    }

    async fn grep(&self, a: GrepArgs) -> Outcome {
        let t = self.target(a.path.as_deref().unwrap_or(""));
        let context = a.context.unwrap_or(0);
        let output = match a.output_mode {
            GrepMode::Content => GrepOutput::Content,
            GrepMode::FilesWithMatches => GrepOutput::Files,
            GrepMode::Count => GrepOutput::Count,
        };
        let r = self
            .daemon
            .client()
            .grep(GrepRequest {
                workspace: t.workspace.clone(),
                pattern: a.pattern.clone(),
                fixed_string: a.fixed_string,
                case_insensitive: a.ignore_case,
                path: t.path,
                glob: a.glob.unwrap_or_default(),
                context_before: context,
                context_after: context,
                output: output as i32,
                max_results: a.max_results.unwrap_or(GREP_DEFAULT_RESULTS),
                include_hidden: false,
                respect_gitignore: None,
            })
            .await?
            .into_inner();
        let shown = |p: &str| self.shown(&t.workspace, p);
        let mut lines: Vec<String> = match a.output_mode {
            GrepMode::Content => r
                .lines
                .iter()
                .map(|l| {
                    let sep = if l.is_match { ':' } else { '-' };
                    format!("{}{sep}{}{sep}{}", shown(&l.path), l.line_number, l.text)
                })
                .collect(),
            GrepMode::FilesWithMatches => r.files.iter().map(|f| shown(f)).collect(),
            GrepMode::Count => r
                .counts
                .iter()
                .map(|c| format!("{}:{}", shown(&c.path), c.count))
                .collect(),
        };
        if lines.is_empty() {
            lines.push(format!(
                "No matches for {:?} ({} files searched)",
                a.pattern, r.files_searched
            ));
        }
        if r.truncated {
            lines.push("[cut at maxResults: narrow the search or raise maxResults]".into());
        }
        Ok(render::text(lines.join("\n")))
    }

    async fn run_command(&self, a: RunCommandArgs) -> Outcome {
        let (argv, shell) = match (a.argv, a.command) {
            (Some(argv), None) if !argv.is_empty() => (argv, String::new()),
            (None, Some(command)) if !command.trim().is_empty() => {
                if !self.grants.may_use_a_shell() {
                    return Err(Failure::Usage(
                        "this agent's policy allows no shell: give argv (program and arguments) \
                         instead of command"
                            .into(),
                    ));
                }
                (Vec::new(), command)
            }
            _ => {
                return Err(Failure::Usage(
                    "give exactly one of argv (a non-empty list: program and arguments) or \
                     command (a string for /bin/sh -c)"
                        .into(),
                ));
            }
        };
        let cwd = self.target(a.cwd.as_deref().unwrap_or(""));
        let timeout_ms = match a.timeout {
            None => 0,
            Some(s) if s.is_finite() && s > 0.0 => (s * 1000.0).ceil() as u64,
            Some(s) => {
                return Err(Failure::Usage(format!(
                    "timeout must be a positive number of seconds, not {s}"
                )));
            }
        };
        let r = self
            .daemon
            .client()
            .run(ExecRequest {
                workspace: cwd.workspace,
                argv,
                shell,
                cwd: cwd.path,
                env: a.env.unwrap_or_default().into_iter().collect(),
                stdin: a.stdin.unwrap_or_default().into_bytes(),
                timeout_ms,
                idle_timeout_ms: 0,
                output_budget_bytes: COMMAND_OUTPUT_BUDGET,
                idempotency_key: String::new(),
                session_id: String::new(),
                deterministic: false,
            })
            .await?
            .into_inner();
        Ok(render::text(command_report(&r)))
    }
}

/// The text of a result's first block.
fn first_text(r: &CallToolResult) -> String {
    r.content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default()
}

/// A command's result as a model reads it: how it ended, then each stream's
/// head and tail with what was cut between them.
pub fn command_report(r: &ExecResult) -> String {
    let e = r.exited.clone().unwrap_or_default();
    let ended = if e.timed_out {
        "killed: timed out (raise timeout, up to the policy's maximum, or do less per call)"
            .to_string()
    } else if e.idle_timed_out {
        "killed: printed nothing for too long".to_string()
    } else if e.oom_killed {
        "killed: out of memory (the policy's memory limit)".to_string()
    } else if e.cancelled {
        "cancelled".to_string()
    } else if let Some(code) = e.exit_code {
        format!("exit status {code}")
    } else if let Some(sig) = e.signal {
        format!("killed by signal {sig}")
    } else {
        "ended without an exit status".to_string()
    };
    let mut out = format!("{ended} ({} ms)\n", e.wall_time_ms);
    for (name, captured) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
        let c = captured.clone().unwrap_or_default();
        if c.total_bytes == 0 {
            out.push_str(&format!("--- {name}: empty\n"));
            continue;
        }
        out.push_str(&format!("--- {name} ({} bytes)\n", c.total_bytes));
        out.push_str(&String::from_utf8_lossy(&c.head));
        if c.omitted_bytes > 0 {
            out.push_str(&format!(
                "\n[... {} bytes cut here; the end follows ...]\n",
                c.omitted_bytes
            ));
        }
        out.push_str(&String::from_utf8_lossy(&c.tail));
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

fn is_dir(e: &DirEntry) -> bool {
    e.kind == EntryKind::Dir as i32
}

fn marker(e: &DirEntry) -> &'static str {
    if is_dir(e) { "[DIR]" } else { "[FILE]" }
}

fn name_of(e: &DirEntry) -> &str {
    e.path.rsplit('/').next().unwrap_or(&e.path)
}

/// An entry's path below the listed directory: its last `depth` components.
fn relative_to_listed(e: &DirEntry) -> String {
    let parts: Vec<&str> = e.path.split('/').collect();
    let keep = (e.depth as usize).clamp(1, parts.len());
    parts[parts.len() - keep..].join("/")
}

fn globs(patterns: &[String]) -> Result<GlobSet, Failure> {
    let mut set = GlobSetBuilder::new();
    for p in patterns {
        let glob = Glob::new(p)
            .map_err(|e| Failure::Usage(format!("excludePatterns: {p:?} is not a glob: {e}")))?;
        set.add(glob);
    }
    set.build()
        .map_err(|e| Failure::Usage(format!("excludePatterns: {e}")))
}

/// Excluded when the path, any directory above it, or its name matches.
fn excluded(set: &GlobSet, rel: &str) -> bool {
    if set.is_empty() {
        return false;
    }
    let mut prefix = String::new();
    for part in rel.split('/') {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        if set.is_match(&prefix) || set.is_match(part) {
            return true;
        }
    }
    false
}

/// Adds `rel` to a JSON tree of `{name, type, children}` entries.
fn insert(level: &mut Vec<serde_json::Value>, rel: &str, dir: bool) {
    let (name, rest) = match rel.split_once('/') {
        Some((name, rest)) => (name, Some(rest)),
        None => (rel, None),
    };
    let pos = level.iter().position(|n| n["name"] == name);
    let index = match pos {
        Some(i) => i,
        None => {
            let node = if dir || rest.is_some() {
                serde_json::json!({"name": name, "type": "directory", "children": []})
            } else {
                serde_json::json!({"name": name, "type": "file"})
            };
            level.push(node);
            level.len() - 1
        }
    };
    if let Some(rest) = rest
        && let Some(children) = level[index]["children"].as_array_mut()
    {
        insert(children, rest, dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, depth: u32, dir: bool) -> DirEntry {
        DirEntry {
            path: path.into(),
            kind: if dir { EntryKind::Dir } else { EntryKind::File } as i32,
            depth,
            ..Default::default()
        }
    }

    #[test]
    fn the_tree_nests_entries_below_the_listed_directory() {
        let mut root = Vec::new();
        for e in [
            entry("src/lib", 1, true),
            entry("src/lib/a.rs", 2, false),
            entry("src/x.txt", 1, false),
        ] {
            insert(&mut root, &relative_to_listed(&e), is_dir(&e));
        }
        assert_eq!(
            serde_json::Value::Array(root),
            serde_json::json!([
                {"name": "lib", "type": "directory", "children": [{"name": "a.rs", "type": "file"}]},
                {"name": "x.txt", "type": "file"}
            ])
        );
    }

    #[test]
    fn excludes_match_the_path_a_directory_above_it_or_the_name() {
        let set = globs(&["node_modules".into(), "**/*.log".into()])
            .ok()
            .unwrap();
        assert!(excluded(&set, "node_modules/a/b.js"));
        assert!(excluded(&set, "web/node_modules"));
        assert!(excluded(&set, "logs/x.log"));
        assert!(!excluded(&set, "src/main.rs"));
    }

    #[test]
    fn a_command_report_says_how_it_ended_and_what_was_cut() {
        let r = ExecResult {
            stdout: Some(CapturedOutput {
                head: b"first\n".to_vec(),
                tail: b"last\n".to_vec(),
                omitted_bytes: 900,
                total_bytes: 911,
            }),
            stderr: None,
            exited: Some(ExecExited {
                exit_code: Some(3),
                wall_time_ms: 12,
                ..Default::default()
            }),
            ..Default::default()
        };
        let text = command_report(&r);
        assert!(text.starts_with("exit status 3 (12 ms)\n"), "{text}");
        assert!(text.contains("--- stdout (911 bytes)\nfirst\n"), "{text}");
        assert!(
            text.contains("[... 900 bytes cut here; the end follows ...]\nlast\n"),
            "{text}"
        );
        assert!(text.contains("--- stderr: empty"), "{text}");
    }
}
