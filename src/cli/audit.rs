//! `agentjail audit verify` and `agentjail audit show`.

use crate::audit::verify::verify;
use clap::{Args, Subcommand};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check every record's hash and the chain, across files given in
    /// order (oldest rotated file first); report the first break.
    Verify {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print records, filtered, as a table or as JSON lines.
    Show(ShowArgs),
}

#[derive(Args)]
pub struct ShowArgs {
    /// Audit files (oldest first).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[arg(long)]
    agent: Option<String>,
    /// Method name, e.g. ReadFile, Exec (case-insensitive).
    #[arg(long)]
    method: Option<String>,
    /// allow, deny or error.
    #[arg(long)]
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
        AuditCommand::Verify { files } => match verify(&files) {
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
        },
        AuditCommand::Show(args) => show(args),
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
    if !args.json {
        println!(
            "{:>8}  {:<27}  {:<12}  {:<10}  {:<6}  {:<18}  TARGET",
            "SEQ", "TIME", "AGENT", "METHOD", "DECIS", "STATUS"
        );
    }
    let outcomes = if args.json {
        HashMap::new()
    } else {
        outcomes_of_intents(&args.files)
    };
    for file in &args.files {
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
    let status = match (outcome["reason"].as_str(), outcome["exit_code"].as_i64()) {
        (Some(reason), _) => reason.to_string(),
        (None, Some(code)) => format!("exit {code}"),
        _ => outcome["status"].as_str().unwrap_or("").to_string(),
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
