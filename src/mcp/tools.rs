//! The tool definitions: name, description, parameter schema and hints of
//! every tool, in one table. The MCP server lists them and `agentjail tools`
//! prints them for function calling, so both always agree.
//!
//! Names and parameters follow the MCP filesystem reference server
//! (`read_text_file`, `edit_file` with `edits`/`dryRun`, …), so agents that
//! know it need nothing new; `grep` and `run_command` are agentjail's own.
//! The session tools follow Codex: `exec_command` runs a command on a
//! session's terminal and answers with what it printed within a yield time
//! and, while it runs, an id that `write_stdin` writes to; `start_process`,
//! `read_process_output` and `kill_process` manage background processes.

use super::grants::{Commands, Grants};
use rmcp::handler::server::common::schema_for_input;
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

const PATH_FORMS: &str = "Paths may be relative to the workspace, start with /workspace/ \
(where commands see it), or be a host path under a workspace root \
(see list_allowed_directories).";

/// Each tool the server knows, for dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ReadTextFile,
    ReadMediaFile,
    ReadMultipleFiles,
    WriteFile,
    EditFile,
    CreateDirectory,
    ListDirectory,
    ListDirectoryWithSizes,
    DirectoryTree,
    MoveFile,
    SearchFiles,
    GetFileInfo,
    ListAllowedDirectories,
    Grep,
    RunCommand,
    ExecCommand,
    WriteStdin,
    StartProcess,
    ReadProcessOutput,
    KillProcess,
}

/// MCP tool annotations, all four always given.
#[derive(Debug, Clone, Copy)]
struct Hints {
    read_only: bool,
    destructive: bool,
    idempotent: bool,
}

const READS: Hints = Hints {
    read_only: true,
    destructive: false,
    idempotent: true,
};

struct ToolDef {
    kind: Kind,
    name: &'static str,
    title: &'static str,
    description: &'static str,
    schema: fn() -> Arc<JsonObject>,
    hints: Hints,
}

fn schema<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    // The argument types are ours and are objects: a failure is a bug.
    let mut schema = schema_for_input::<T>().expect("tool arguments are JSON objects");
    for value in Arc::make_mut(&mut schema).values_mut() {
        plain(value);
    }
    schema
}

/// Schemas every function-calling client takes: an optional field is just
/// not required (no `["integer", "null"]`), and no Rust-only formats such
/// as `uint64`, which strict validators refuse as unknown.
fn plain(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Array(types)) = map.get("type") {
                let named: Vec<_> = types.iter().filter(|t| *t != "null").cloned().collect();
                if named.len() == 1 {
                    map.insert("type".into(), named[0].clone());
                }
            }
            if map
                .get("format")
                .and_then(|f| f.as_str())
                .is_some_and(|f| f.starts_with("uint") || f.starts_with("int") || f == "double")
            {
                map.remove("format");
            }
            map.values_mut().for_each(plain);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(plain),
        _ => {}
    }
}

const TOOLS: &[ToolDef] = &[
    ToolDef {
        kind: Kind::ReadTextFile,
        name: "read_text_file",
        title: "Read text file",
        description: "Read a text file (UTF-8). `head` returns only the first N lines, `tail` only \
            the last N. Long files are cut at the policy's read limit and the answer says where; \
            use head/tail or grep for the rest.",
        schema: schema::<ReadTextFileArgs>,
        hints: READS,
    },
    ToolDef {
        kind: Kind::ReadMediaFile,
        name: "read_media_file",
        title: "Read image or audio file",
        description: "Read an image or audio file; returns it base64-encoded with its MIME type.",
        schema: schema::<PathArgs>,
        hints: READS,
    },
    ToolDef {
        kind: Kind::ReadMultipleFiles,
        name: "read_multiple_files",
        title: "Read several files",
        description: "Read several text files at once; each comes back under its path, and a file \
            that cannot be read shows its error without failing the others.",
        schema: schema::<ReadMultipleFilesArgs>,
        hints: READS,
    },
    ToolDef {
        kind: Kind::WriteFile,
        name: "write_file",
        title: "Write file",
        description: "Create a file or replace its whole content (atomically). Missing parent \
            directories are created. Use edit_file to change part of a file.",
        schema: schema::<WriteFileArgs>,
        hints: Hints {
            read_only: false,
            destructive: true,
            idempotent: true,
        },
    },
    ToolDef {
        kind: Kind::EditFile,
        name: "edit_file",
        title: "Edit file",
        description: "Replace exact text in a file: each edit's oldText must occur exactly once; \
            edits apply in order, all or none. Returns a unified diff. With dryRun the diff is \
            shown and nothing is written.",
        schema: schema::<EditFileArgs>,
        hints: Hints {
            read_only: false,
            destructive: true,
            idempotent: false,
        },
    },
    ToolDef {
        kind: Kind::CreateDirectory,
        name: "create_directory",
        title: "Create directory",
        description: "Create a directory and any missing parents; an existing directory is fine.",
        schema: schema::<PathArgs>,
        hints: Hints {
            read_only: false,
            destructive: false,
            idempotent: true,
        },
    },
    ToolDef {
        kind: Kind::ListDirectory,
        name: "list_directory",
        title: "List directory",
        description: "List a directory's entries, each marked [DIR] or [FILE].",
        schema: schema::<PathArgs>,
        hints: READS,
    },
    ToolDef {
        kind: Kind::ListDirectoryWithSizes,
        name: "list_directory_with_sizes",
        title: "List directory with sizes",
        description: "List a directory's entries with their sizes, sorted by name or size, and \
            the totals.",
        schema: schema::<ListWithSizesArgs>,
        hints: READS,
    },
    ToolDef {
        kind: Kind::DirectoryTree,
        name: "directory_tree",
        title: "Directory tree",
        description: "A recursive tree of a directory as JSON: each entry has `name`, `type` \
            (file or directory) and, for directories, `children`. excludePatterns are globs \
            of paths to leave out.",
        schema: schema::<DirectoryTreeArgs>,
        hints: READS,
    },
    ToolDef {
        kind: Kind::MoveFile,
        name: "move_file",
        title: "Move or rename",
        description: "Move or rename a file or directory within a workspace; fails if the \
            destination exists.",
        schema: schema::<MoveFileArgs>,
        hints: Hints {
            read_only: false,
            destructive: false,
            idempotent: false,
        },
    },
    ToolDef {
        kind: Kind::SearchFiles,
        name: "search_files",
        title: "Find files by name",
        description: "Find files and directories whose path (relative to `path`) matches a glob: \
            `*.py` in that directory, `**/*.py` in all below it. excludePatterns are globs to \
            leave out.",
        schema: schema::<SearchFilesArgs>,
        hints: READS,
    },
    ToolDef {
        kind: Kind::GetFileInfo,
        name: "get_file_info",
        title: "File info",
        description: "Size, type, modification time, permissions and whether the agent may read \
            and write the path.",
        schema: schema::<PathArgs>,
        hints: READS,
    },
    ToolDef {
        kind: Kind::ListAllowedDirectories,
        name: "list_allowed_directories",
        title: "Allowed directories",
        description: "The workspaces this agent may use: name, host path, read-only or \
            read-write. The first is the default, seen by commands as /workspace.",
        schema: schema::<NoArgs>,
        hints: READS,
    },
    ToolDef {
        kind: Kind::Grep,
        name: "grep",
        title: "Search file contents",
        description: "Search file contents with a regular expression (ripgrep syntax; \
            fixedString for literal text). Honours .gitignore; outputMode picks matching lines \
            (content), file paths (files_with_matches) or counts.",
        schema: schema::<GrepArgs>,
        hints: READS,
    },
    ToolDef {
        kind: Kind::RunCommand,
        name: "run_command",
        title: "Run command",
        description: "Run a command in a fresh sandbox with the workspace at /workspace. Give \
            `argv` (program and arguments, no shell)",
        schema: schema::<RunCommandArgs>,
        hints: Hints {
            read_only: false,
            destructive: true,
            idempotent: false,
        },
    },
    ToolDef {
        kind: Kind::ExecCommand,
        name: "exec_command",
        title: "Run command in the session",
        description: "Run `cmd` (a /bin/sh -c string) in this conversation's session: one \
            sandbox that lives across calls, so files, background processes and the terminal \
            stay. Returns what the command printed within yield_time_ms (default 10000, at most \
            30000) and its exit code if it finished; if it still runs, the answer gives a \
            session ID: send it input with write_stdin (which also returns the new output), \
            read more with read_process_output, stop it with kill_process. tty runs it on a \
            terminal (REPLs, prompts, programs that need one). workdir is relative to the \
            workspace (or /workspace/…).",
        schema: schema::<ExecCommandArgs>,
        hints: Hints {
            read_only: false,
            destructive: true,
            idempotent: false,
        },
    },
    ToolDef {
        kind: Kind::WriteStdin,
        name: "write_stdin",
        title: "Write to a running command",
        description: "Write `chars` to the stdin (or terminal) of a command started by \
            exec_command or start_process, then return what it printed since the last read, \
            within yield_time_ms (default 250, at most 30000). Empty chars only polls for \
            output. Give \"\\u0003\" for Ctrl-C on a terminal, \"\\u0004\" for end of input.",
        schema: schema::<WriteStdinArgs>,
        hints: Hints {
            read_only: false,
            destructive: true,
            idempotent: false,
        },
    },
    ToolDef {
        kind: Kind::StartProcess,
        name: "start_process",
        title: "Start background process",
        description: "Start a process in the background in this conversation's session (a \
            dev server, a watcher, a long build) and return at once with its process ID. Its \
            output is kept (head and newest tail) for read_process_output; other commands of \
            the session reach its ports on localhost. Give `argv` (no shell)",
        schema: schema::<StartProcessArgs>,
        hints: Hints {
            read_only: false,
            destructive: true,
            idempotent: false,
        },
    },
    ToolDef {
        kind: Kind::ReadProcessOutput,
        name: "read_process_output",
        title: "Read process output",
        description: "Read a background process's output (stdout or stderr) from where the last \
            read ended, or from `offset` (a byte position in the whole output; 0 = from the \
            start). `wait` (seconds, at most 30) waits for output when there is none yet. The \
            answer says whether the process still runs, its exit code, the next offset and any \
            bytes the bounded buffer dropped.",
        schema: schema::<ReadProcessOutputArgs>,
        hints: READS,
    },
    ToolDef {
        kind: Kind::KillProcess,
        name: "kill_process",
        title: "Stop process",
        description: "Send a signal (default KILL; TERM, INT, HUP or a number) to a process \
            of this conversation's session and its children, and report how it ended.",
        schema: schema::<KillProcessArgs>,
        hints: Hints {
            read_only: false,
            destructive: true,
            idempotent: true,
        },
    },
];

pub fn kind_of(name: &str) -> Option<Kind> {
    TOOLS.iter().find(|t| t.name == name).map(|t| t.kind)
}

/// The tools this agent is offered, described for its grants.
pub fn definitions(grants: &Grants) -> Vec<Tool> {
    TOOLS
        .iter()
        .filter(|t| offered(t.kind, grants))
        .map(|t| {
            let mut schema = (t.schema)();
            let mut description = t.description.to_string();
            if starts_commands(t.kind) {
                description = command_description(t.kind, t.description, grants);
            }
            if matches!(t.kind, Kind::RunCommand | Kind::StartProcess) {
                if !grants.may_use_a_shell() {
                    // Offer only what the policy allows: argv, no command string.
                    let s = Arc::make_mut(&mut schema);
                    if let Some(props) = s.get_mut("properties").and_then(|p| p.as_object_mut()) {
                        props.remove("command");
                    }
                }
            } else if takes_paths(t.kind) {
                description = format!("{description} {PATH_FORMS}");
            }
            if !t.hints.read_only && !runs_commands(t.kind) {
                let read_only: Vec<&str> = grants
                    .workspaces
                    .iter()
                    .filter(|w| w.read_only)
                    .map(|w| w.name.as_str())
                    .collect();
                if !read_only.is_empty() {
                    description = format!(
                        "{description} Read-only workspaces (writes refused): {}.",
                        read_only.join(", ")
                    );
                }
            }
            let open_world = runs_commands(t.kind) && opens_the_world(&grants.commands);
            Tool::new(t.name, description, schema)
                .with_title(t.title)
                .with_annotations(
                    ToolAnnotations::with_title(t.title)
                        .read_only(t.hints.read_only)
                        .destructive(t.hints.destructive)
                        .idempotent(t.hints.idempotent)
                        .open_world(open_world),
                )
        })
        .collect()
}

fn takes_paths(kind: Kind) -> bool {
    !matches!(kind, Kind::ListAllowedDirectories) && !runs_commands(kind)
}

/// The tools that run or drive commands: offered only to an agent that
/// may run commands.
pub fn runs_commands(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::RunCommand
            | Kind::ExecCommand
            | Kind::WriteStdin
            | Kind::StartProcess
            | Kind::ReadProcessOutput
            | Kind::KillProcess
    )
}

/// The tools that start a command, whose description names what may run.
fn starts_commands(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::RunCommand | Kind::ExecCommand | Kind::StartProcess
    )
}

/// Whether this agent is offered the tool: command tools need commands,
/// the session tools sessions, and `exec_command` (a command string) a
/// shell too.
fn offered(kind: Kind, grants: &Grants) -> bool {
    if !runs_commands(kind) {
        return true;
    }
    if kind != Kind::RunCommand && !grants.sessions {
        return false;
    }
    grants.may_run_commands() && (kind != Kind::ExecCommand || grants.may_use_a_shell())
}

/// A command may reach the network unless the policy says it cannot.
fn opens_the_world(commands: &Commands) -> bool {
    match commands {
        Commands::Allowed { network, .. } => *network,
        Commands::Unstated => true,
        Commands::None => false,
    }
}

/// `run_command`'s and `start_process`'s description: what the agent's
/// grants allow them to run.
fn command_description(kind: Kind, base: &str, grants: &Grants) -> String {
    let mut d = base.to_string();
    if kind != Kind::ExecCommand {
        if grants.may_use_a_shell() {
            d.push_str(" or `command` (a string run by /bin/sh -c, for pipes and redirects).");
        } else {
            d.push_str("; this agent has no shell, so pipes and redirects are not available.");
        }
    }
    if kind == Kind::RunCommand {
        d.push_str(
            " `cwd` is relative to the workspace (or /workspace/…); `timeout` is in seconds, \
             capped by the policy. The result gives the exit status, then the head and tail of \
             stdout and stderr with the number of bytes cut between them.",
        );
    }
    match &grants.commands {
        Commands::Allowed {
            programs, network, ..
        } => {
            if programs.is_empty() {
                d.push_str(" Programs allowed: any on the sandbox PATH the policy does not deny.");
            } else {
                d.push_str(&format!(" Programs allowed: {}.", programs.join(", ")));
            }
            if !network {
                d.push_str(" No network.");
            }
        }
        Commands::Unstated | Commands::None => d.push_str(
            " The policy decides which programs may run; a refusal names the rule that refused it.",
        ),
    }
    d
}

// ------------------------------------------------------------ arguments

/// Every path argument's description.
const PATH_DOC: &str =
    "Path: relative to the workspace, /workspace/…, or a host path under a workspace root";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathArgs {
    #[schemars(description = PATH_DOC)]
    pub path: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadTextFileArgs {
    #[schemars(description = PATH_DOC)]
    pub path: String,
    /// If given, only the first N lines.
    pub head: Option<u64>,
    /// If given, only the last N lines.
    pub tail: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadMultipleFilesArgs {
    /// Paths of the files to read.
    #[schemars(length(min = 1))]
    pub paths: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteFileArgs {
    #[schemars(description = PATH_DOC)]
    pub path: String,
    /// The file's whole new content.
    pub content: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EditOperation {
    /// Exact text to find; it must occur exactly once.
    pub old_text: String,
    /// Text to put in its place.
    pub new_text: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EditFileArgs {
    #[schemars(description = PATH_DOC)]
    pub path: String,
    /// Applied in order, each to the result of the one before.
    #[schemars(length(min = 1))]
    pub edits: Vec<EditOperation>,
    /// Show the diff without writing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Default, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortBy {
    #[default]
    Name,
    Size,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListWithSizesArgs {
    #[schemars(description = PATH_DOC)]
    pub path: String,
    /// Sort by name (default) or size, largest first.
    #[serde(default)]
    pub sort_by: SortBy,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DirectoryTreeArgs {
    #[schemars(description = PATH_DOC)]
    pub path: String,
    /// Globs of paths to leave out, e.g. `node_modules` or `**/*.log`.
    #[serde(default)]
    pub exclude_patterns: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveFileArgs {
    /// Path to move.
    pub source: String,
    /// New path, in the same workspace.
    pub destination: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SearchFilesArgs {
    /// Directory to search from.
    pub path: String,
    /// Glob relative to `path`, e.g. `**/*.rs`.
    pub pattern: String,
    /// Globs of paths to leave out.
    #[serde(default)]
    pub exclude_patterns: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

#[derive(Debug, Default, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrepMode {
    /// Matching lines with their line numbers.
    #[default]
    Content,
    /// Paths of the files that match.
    FilesWithMatches,
    /// Number of matches per file.
    Count,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GrepArgs {
    /// Regular expression (or literal text with fixedString).
    pub pattern: String,
    /// File or directory to search (default: the workspace root).
    pub path: Option<String>,
    /// Only files whose path matches this glob, e.g. `*.py`.
    pub glob: Option<String>,
    #[serde(default)]
    pub ignore_case: bool,
    #[serde(default)]
    pub fixed_string: bool,
    /// Lines of context before and after each match (content mode).
    pub context: Option<u32>,
    /// content (default), files_with_matches or count.
    #[serde(default)]
    pub output_mode: GrepMode,
    /// At most this many lines (content) or files; default 200.
    pub max_results: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunCommandArgs {
    /// Program and arguments, run without a shell, e.g. ["pytest", "-q"].
    pub argv: Option<Vec<String>>,
    /// A command string run by /bin/sh -c (only where the policy allows a shell).
    pub command: Option<String>,
    /// Working directory, relative to the workspace (default: its root).
    pub cwd: Option<String>,
    /// Seconds before the command is killed (default and maximum: the policy's).
    pub timeout: Option<f64>,
    /// Extra environment variables (only names the policy allows).
    pub env: Option<BTreeMap<String, String>>,
    /// Text given to the command's standard input.
    pub stdin: Option<String>,
}

/// Codex's exec_command arguments (without `shell` and `login`: the
/// sandbox runs /bin/sh and has no login profile).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecCommandArgs {
    /// The command, run by /bin/sh -c in the session.
    pub cmd: String,
    /// Working directory, relative to the workspace (default: the session's).
    pub workdir: Option<String>,
    /// Run on a terminal (stdout and stderr are then one stream).
    #[serde(default)]
    pub tty: bool,
    /// Milliseconds to wait for output before answering (default 10000, at most 30000).
    pub yield_time_ms: Option<u64>,
    /// Most output to return, in tokens of about 4 bytes (head and tail kept).
    pub max_output_tokens: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteStdinArgs {
    /// The session ID exec_command (or start_process) answered with.
    pub session_id: u32,
    /// Text to write; empty: only read new output.
    #[serde(default)]
    pub chars: String,
    /// Milliseconds to wait for output before answering (default 250, at most 30000).
    pub yield_time_ms: Option<u64>,
    /// Most output to return, in tokens of about 4 bytes (head and tail kept).
    pub max_output_tokens: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartProcessArgs {
    /// Program and arguments, run without a shell, e.g. ["python3", "-m", "http.server"].
    pub argv: Option<Vec<String>>,
    /// A command string run by /bin/sh -c (only where the policy allows a shell).
    pub command: Option<String>,
    /// Working directory, relative to the workspace (default: the session's).
    pub cwd: Option<String>,
    /// Extra environment variables (only names the policy allows).
    pub env: Option<BTreeMap<String, String>>,
    /// Run on a terminal (stdout and stderr are then one stream).
    #[serde(default)]
    pub tty: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamName {
    #[default]
    Stdout,
    Stderr,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadProcessOutputArgs {
    /// The process ID start_process (or exec_command) answered with.
    pub process_id: u32,
    /// stdout (default) or stderr.
    #[serde(default)]
    pub stream: StreamName,
    /// Byte offset to read from (default: where the last read ended).
    pub offset: Option<u64>,
    /// Seconds to wait for output when there is none yet (default 0, at most 30).
    pub wait: Option<f64>,
    /// Most bytes to return (default 16384).
    pub max_bytes: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KillProcessArgs {
    /// The process ID start_process (or exec_command) answered with.
    pub process_id: u32,
    /// KILL (default), TERM, INT, HUP, … or a signal number.
    pub signal: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::grants::Workspace;
    use std::path::PathBuf;

    fn grants(commands: Commands) -> Grants {
        Grants {
            agent: "a".into(),
            workspaces: vec![
                Workspace {
                    name: "main".into(),
                    path: PathBuf::from("/srv/ws"),
                    read_only: false,
                },
                Workspace {
                    name: "docs".into(),
                    path: PathBuf::from("/srv/docs"),
                    read_only: true,
                },
            ],
            commands,
            sessions: true,
        }
    }

    fn names(tools: &[Tool]) -> Vec<&str> {
        tools.iter().map(|t| t.name.as_ref()).collect()
    }

    fn find<'a>(tools: &'a [Tool], name: &str) -> &'a Tool {
        tools.iter().find(|t| t.name == name).unwrap()
    }

    #[test]
    fn every_tool_has_all_four_hints_and_an_object_schema() {
        let tools = definitions(&grants(Commands::Unstated));
        assert_eq!(tools.len(), TOOLS.len());
        for t in &tools {
            let a = t.annotations.as_ref().unwrap();
            assert!(a.read_only_hint.is_some(), "{}", t.name);
            assert!(a.destructive_hint.is_some(), "{}", t.name);
            assert!(a.idempotent_hint.is_some(), "{}", t.name);
            assert!(a.open_world_hint.is_some(), "{}", t.name);
            assert_eq!(t.input_schema.get("type").unwrap(), "object", "{}", t.name);
            assert!(kind_of(&t.name).is_some());
        }
        let edit = find(&tools, "edit_file");
        let props = edit.input_schema["properties"].as_object().unwrap();
        assert!(props.contains_key("dryRun") && props.contains_key("edits"));
    }

    #[test]
    fn no_run_command_for_an_agent_without_commands() {
        let tools = definitions(&grants(Commands::None));
        assert!(!names(&tools).contains(&"run_command"));
        assert!(names(&tools).contains(&"read_text_file"));
    }

    #[test]
    fn run_command_names_the_programs_and_drops_the_string_form_without_a_shell() {
        let tools = definitions(&grants(Commands::Allowed {
            programs: vec!["python3".into(), "pytest".into()],
            shell: false,
            network: false,
        }));
        let run = find(&tools, "run_command");
        let d = run.description.as_deref().unwrap();
        assert!(d.contains("python3, pytest"), "{d}");
        assert!(d.contains("no shell"), "{d}");
        let props = run.input_schema["properties"].as_object().unwrap();
        assert!(props.contains_key("argv") && !props.contains_key("command"));
        let hints = run.annotations.as_ref().unwrap();
        assert_eq!(hints.open_world_hint, Some(false));
    }

    #[test]
    fn session_tools_follow_the_command_grants() {
        let session_tools = [
            "exec_command",
            "write_stdin",
            "start_process",
            "read_process_output",
            "kill_process",
        ];
        let none = definitions(&grants(Commands::None));
        for t in session_tools {
            assert!(!names(&none).contains(&t), "{t} offered without commands");
        }
        let unstated = definitions(&grants(Commands::Unstated));
        for t in session_tools {
            assert!(names(&unstated).contains(&t), "{t} not offered");
        }
        // Without a shell: no exec_command (its cmd is a shell string), and
        // start_process takes argv only.
        let argv_only = definitions(&grants(Commands::Allowed {
            programs: vec!["python3".into()],
            shell: false,
            network: false,
        }));
        assert!(!names(&argv_only).contains(&"exec_command"));
        let start = find(&argv_only, "start_process");
        let props = start.input_schema["properties"].as_object().unwrap();
        assert!(props.contains_key("argv") && !props.contains_key("command"));
        let d = start.description.as_deref().unwrap();
        assert!(
            d.contains("Programs allowed: python3.") && d.contains("no shell"),
            "{d}"
        );
        // An agent whose policy allows no sessions keeps run_command only.
        let mut no_sessions = grants(Commands::Unstated);
        no_sessions.sessions = false;
        let listed = definitions(&no_sessions);
        assert!(names(&listed).contains(&"run_command"));
        for t in session_tools {
            assert!(!names(&listed).contains(&t), "{t} offered without sessions");
        }
        let exec = find(&unstated, "exec_command");
        let props = exec.input_schema["properties"].as_object().unwrap();
        for field in [
            "cmd",
            "workdir",
            "tty",
            "yield_time_ms",
            "max_output_tokens",
        ] {
            assert!(props.contains_key(field), "exec_command lacks {field}");
        }
        assert_eq!(exec.input_schema["required"], serde_json::json!(["cmd"]));
        let write = find(&unstated, "write_stdin");
        assert_eq!(
            write.input_schema["required"],
            serde_json::json!(["session_id"])
        );
        let read = find(&unstated, "read_process_output");
        assert_eq!(
            read.annotations.as_ref().unwrap().read_only_hint,
            Some(true)
        );
    }

    #[test]
    fn writing_tools_name_the_read_only_workspaces() {
        let tools = definitions(&grants(Commands::None));
        let d = find(&tools, "write_file").description.clone().unwrap();
        assert!(
            d.contains("Read-only workspaces (writes refused): docs."),
            "{d}"
        );
        let d = find(&tools, "read_text_file").description.clone().unwrap();
        assert!(!d.contains("Read-only workspaces"), "{d}");
    }
}
