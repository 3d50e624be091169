//! `agentjail audit verify` and `agentjail audit show`.

use crate::audit::verify::verify;
use clap::{Args, Subcommand};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check every record's hash and the chain, across files given in
    /// order (oldest rotated file first); report the first break.
    ///
    /// A `.head` file among them (a glob such as `audit.jsonl*` matches it)
    /// is checked beside its log, not read as records. Without FILES: the
    /// log named by the config and its rotated files, in chain order.
    Verify {
        files: Vec<PathBuf>,
        /// Config file naming the log (default: as `serve` finds it).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print records, filtered, as a table or as JSON lines.
    Show(ShowArgs),
}

#[derive(Args)]
pub struct ShowArgs {
    /// Audit files, oldest first (default: the log named by the config,
    /// with its rotated files).
    files: Vec<PathBuf>,
    /// Config file naming the log (default: as `serve` finds it).
    #[arg(long, short)]
    config: Option<PathBuf>,
    #[arg(long)]
    agent: Option<String>,
    /// Method name, e.g. ReadFile, Exec (case-insensitive).
    #[arg(long)]
    method: Option<String>,
    /// One session's story: its opening, every call and command in it,
    /// its processes' exits and its end.
    #[arg(long)]
    session: Option<String>,
    /// The decision recorded: allow, deny or error.
    #[arg(long, value_parser = ["allow", "deny", "error"])]
    decision: Option<String>,
    /// Only records at or after this time: RFC 3339 (2026-11-26T10:00:00Z)
    /// or an age such as 15m, 2h, 1day.
    #[arg(long)]
    since: Option<String>,
    /// Only records before this time (same forms as --since).
    #[arg(long)]
    until: Option<String>,
    /// Print the matching records as JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(command: AuditCommand) -> ExitCode {
    match command {
        AuditCommand::Verify { files, config } => {
            let files = match log_files(files, config.as_deref()) {
                Ok(files) => files,
                Err(e) => {
                    eprintln!("agentjail: {e}");
                    return ExitCode::from(2);
                }
            };
            verify_files(&files)
        }
        AuditCommand::Show(args) => show(args),
    }
}

/// The files to read: the ones given, in the order given (verify reports
/// files out of order), or the config's log and its rotated files in chain
/// order; `.head` files left out either way.
fn log_files(given: Vec<PathBuf>, config: Option<&Path>) -> Result<Vec<PathBuf>, String> {
    if !given.is_empty() {
        return Ok(given.into_iter().filter(|p| !is_head(p)).collect());
    }
    let (config, _) = crate::config::Config::discover(config).map_err(|e| format!("{e:#}"))?;
    let live = config.audit_path();
    let dir = live.parent().unwrap_or(Path::new("."));
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "cannot list {} (the config's audit log directory): {e}; give the files instead",
            dir.display()
        )
    })?;
    let name = live
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&name))
        })
        .collect();
    if !files.contains(&live) {
        return Err(format!(
            "no audit log at {} (from the config); give the files instead",
            live.display()
        ));
    }
    files.retain(|p| rotated_seq(p, &live).is_some() || *p == live);
    Ok(chain_order(files))
}

/// The head file beside a log (`audit.jsonl.head`).
fn is_head(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "head")
}

/// The sequence number a rotated file `<live>.<seq>` ends with.
fn rotated_seq(path: &Path, live: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let base = live.file_name()?.to_str()?;
    let digits = name.strip_prefix(base)?.strip_prefix('.')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Orders log files as the chain runs: for each live log `X`, its rotated
/// files `X.<seq>` by seq, then `X` itself. `X.head` is dropped (verify
/// checks it beside `X`). Files of no known shape keep their given order
/// after those.
fn chain_order(files: Vec<PathBuf>) -> Vec<PathBuf> {
    let files: Vec<PathBuf> = files.into_iter().filter(|p| !is_head(p)).collect();
    // A file is rotated when another given file (or its would-be live log)
    // is its prefix: `audit.jsonl.000000000017` beside `audit.jsonl`.
    let key = |p: &PathBuf| -> (PathBuf, u64) {
        if let (Some(stem), Some(parent)) = (p.file_stem(), p.parent()) {
            let live = parent.join(stem);
            if let Some(seq) = rotated_seq(p, &live) {
                return (live, seq);
            }
        }
        (p.clone(), u64::MAX)
    };
    let mut keyed: Vec<(usize, (PathBuf, u64), PathBuf)> = Vec::new();
    for p in files {
        let k = key(&p);
        let group = keyed
            .iter()
            .position(|(_, (live, _), _)| *live == k.0)
            .map(|i| keyed[i].0)
            .unwrap_or(keyed.len());
        keyed.push((group, k, p));
    }
    keyed.sort_by_key(|(group, (_, seq), _)| (*group, *seq));
    let mut out: Vec<PathBuf> = keyed.into_iter().map(|(_, _, p)| p).collect();
    out.dedup();
    out
}

fn verify_files(files: &[PathBuf]) -> ExitCode {
    match verify(files) {
        Ok(summary) => {
            for note in &summary.notes {
                println!("note: {note}");
            }
            for dangling in &summary.dangling_intents {
                println!("unfinished: {dangling}");
            }
            match (summary.first_seq, summary.last_seq) {
                (Some(first), Some(last)) => println!(
                    "ok: {} record(s), seq {first}..{last}, chain intact; last hash {}",
                    summary.records,
                    summary.last_hash.unwrap_or_default()
                ),
                _ => println!("ok: no records"),
            }
            ExitCode::SUCCESS
        }
        Err(brk) => {
            println!("{brk}");
            ExitCode::FAILURE
        }
    }
}

fn parse_time(text: &str) -> Result<SystemTime, String> {
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(t);
    }
    humantime::parse_duration(text)
        .map(|age| SystemTime::now() - age)
        .map_err(|_| format!("{text:?} is neither an RFC 3339 time nor an age like 15m"))
}

fn show(args: ShowArgs) -> ExitCode {
    let since = match args.since.as_deref().map(parse_time).transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("agentjail: --since: {e}");
            return ExitCode::from(2);
        }
    };
    let until = match args.until.as_deref().map(parse_time).transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("agentjail: --until: {e}");
            return ExitCode::from(2);
        }
    };
    let files = match log_files(args.files, args.config.as_deref()) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("agentjail: {e}");
            return ExitCode::from(2);
        }
    };
    if !args.json {
        println!(
            "{:>8}  {:<27}  {:<12}  {:<10}  {:<6}  {:<18}  TARGET",
            "SEQ", "TIME", "AGENT", "METHOD", "DECIS", "STATUS"
        );
    }
    let outcomes = if args.json {
        HashMap::new()
    } else {
        outcomes_of_intents(&files)
    };
    for file in &files {
        let handle = match std::fs::File::open(file) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("agentjail: cannot open {}: {e}", file.display());
                return ExitCode::from(2);
            }
        };
        for line in BufReader::new(handle).lines() {
            let Ok(line) = line else { break };
            let Ok(record) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let s = |k: &str| record[k].as_str().unwrap_or("");
            if args.agent.as_deref().is_some_and(|a| a != s("agent"))
                || args
                    .method
                    .as_deref()
                    .is_some_and(|m| !m.eq_ignore_ascii_case(s("method")))
                || args.decision.as_deref().is_some_and(|d| d != s("decision"))
                || args
                    .session
                    .as_deref()
                    .is_some_and(|id| record["args"]["session_id"].as_str() != Some(id))
            {
                continue;
            }
            if since.is_some() || until.is_some() {
                let Ok(t) = humantime::parse_rfc3339(s("time")) else {
                    continue;
                };
                if since.is_some_and(|from| t < from) || until.is_some_and(|to| t >= to) {
                    continue;
                }
            }
            if args.json {
                println!("{line}");
            } else {
                print_row(&record, &outcomes);
            }
        }
    }
    ExitCode::SUCCESS
}

/// For each intent record, the seq of the outcome record that names it.
fn outcomes_of_intents(files: &[PathBuf]) -> HashMap<u64, u64> {
    let mut outcomes = HashMap::new();
    for file in files {
        let Ok(handle) = std::fs::File::open(file) else {
            continue;
        };
        for line in BufReader::new(handle).lines() {
            let Ok(line) = line else { break };
            if !line.contains("\"intent\":") {
                continue;
            }
            let Ok(record) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if let (Some(intent), Some(seq)) = (record["intent"].as_u64(), record["seq"].as_u64()) {
                outcomes.insert(intent, seq);
            }
        }
    }
    outcomes
}

fn print_row(r: &Value, outcomes: &HashMap<u64, u64>) {
    let args = &r["args"];
    let target = if let Some(argv) = args["argv"].as_array() {
        argv.iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    } else if let Some(shell) = args["shell"].as_str() {
        format!("sh -c {shell:?}")
    } else if let (Some(from), Some(to)) = (args["from"].as_str(), args["to"].as_str()) {
        format!("{from} -> {to}")
    } else {
        args["path"]
            .as_str()
            .or(args["pattern"].as_str())
            .unwrap_or("")
            .to_string()
    };
    let outcome = &r["outcome"];
    let flag = |k: &str| outcome[k].as_bool() == Some(true);
    let status = if flag("timed_out") {
        "TIMED_OUT".to_string()
    } else if flag("cancelled") {
        "CANCELLED".to_string()
    } else if flag("oom_killed") {
        "OOM_KILLED".to_string()
    } else {
        match (outcome["reason"].as_str(), outcome["exit_code"].as_i64()) {
            (Some(reason), _) => reason.to_string(),
            (None, Some(code)) => format!("exit {code}"),
            _ => outcome["status"].as_str().unwrap_or("").to_string(),
        }
    };
    // Intents and outcomes point at each other.
    let seq = r["seq"].as_u64().unwrap_or(0);
    let status = if r["phase"] == "intent" {
        match outcomes.get(&seq) {
            Some(done) => format!("intent → #{done}"),
            None => "intent, NO OUTCOME".to_string(),
        }
    } else if let Some(intent) = r["intent"].as_u64() {
        format!("{status} (#{intent})")
    } else {
        status
    };
    println!(
        "{:>8}  {:<27}  {:<12}  {:<10}  {:<6}  {:<18}  {}",
        seq,
        r["time"].as_str().unwrap_or(""),
        r["agent"].as_str().unwrap_or("-"),
        r["method"].as_str().unwrap_or(""),
        r["decision"].as_str().unwrap_or(""),
        status,
        target
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(v: &[&str]) -> Vec<PathBuf> {
        v.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn given_files_keep_their_order_without_the_head() {
        let given = paths(&["/l/audit.jsonl", "/l/audit.jsonl.head"]);
        assert_eq!(log_files(given, None).unwrap(), paths(&["/l/audit.jsonl"]));
        let swapped = paths(&["/l/a.000000000002", "/l/a.000000000001"]);
        assert_eq!(log_files(swapped.clone(), None).unwrap(), swapped);
    }

    #[test]
    fn files_run_in_chain_order_and_the_head_is_left_out() {
        // As a shell expands `audit.jsonl*`: sorted by name.
        let given = paths(&[
            "/l/audit.jsonl",
            "/l/audit.jsonl.000000000100",
            "/l/audit.jsonl.000000000020",
            "/l/audit.jsonl.head",
        ]);
        assert_eq!(
            chain_order(given),
            paths(&[
                "/l/audit.jsonl.000000000020",
                "/l/audit.jsonl.000000000100",
                "/l/audit.jsonl",
            ])
        );
        // A fresh log: the glob matches the log and its head.
        assert_eq!(
            chain_order(paths(&["/l/audit.jsonl", "/l/audit.jsonl.head"])),
            paths(&["/l/audit.jsonl"])
        );
        // Names of no known shape keep their order.
        assert_eq!(
            chain_order(paths(&["/x/b.log", "/x/a.log"])),
            paths(&["/x/b.log", "/x/a.log"])
        );
    }
}
