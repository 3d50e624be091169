//! `agentjail audit verify`: checks every record's hash and the chain
//! between them, across rotated files given in order, and reports the first
//! break with its file and line.

use super::record::{GENESIS, HASH_HEX_LEN, HASH_KEY};
use super::writer::read_head;
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// A place where the log is not what the daemon wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub file: PathBuf,
    /// 1-based; 0 for a problem with the file as a whole.
    pub line: usize,
    pub problem: String,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.problem)
    }
}

/// What a successful verification saw.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub last_hash: Option<String>,
    /// Facts worth telling that are not breaks (a chain that starts after
    /// seq 1 because earlier files were not given).
    pub notes: Vec<String>,
    /// Intent records with no outcome record after them: calls that were
    /// under way when the daemon stopped (a crash or kill -9), not
    /// tampering.
    pub dangling_intents: Vec<Dangling>,
}

/// An intent with no outcome: what was about to happen when the daemon
/// stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dangling {
    pub seq: u64,
    pub request_id: String,
    pub method: String,
    pub agent: String,
}

impl fmt::Display for Dangling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "record {}: intent of {} by {} (request {}) has no outcome: the call was still \
             running when the log was read, or the daemon stopped (crash or kill -9) while it \
             ran, so what it did is not recorded",
            self.seq, self.method, self.agent, self.request_id
        )
    }
}

struct Expect {
    seq: u64,
    prev: String,
}

/// Verifies `files` as one chain, in the order given.
pub fn verify(files: &[PathBuf]) -> Result<Summary, Break> {
    let mut summary = Summary::default();
    let mut expect: Option<Expect> = None;
    let mut open = std::collections::BTreeMap::new();
    for file in files {
        verify_file(file, &mut expect, &mut summary, &mut open)?;
    }
    summary.dangling_intents = open.into_values().collect();
    if let Some(last) = files.last() {
        check_head(last, &summary)?;
    }
    Ok(summary)
}

fn verify_file(
    file: &Path,
    expect: &mut Option<Expect>,
    summary: &mut Summary,
    open: &mut std::collections::BTreeMap<u64, Dangling>,
) -> Result<(), Break> {
    let brk = |line: usize, problem: String| Break {
        file: file.to_path_buf(),
        line,
        problem,
    };
    let handle = std::fs::File::open(file).map_err(|e| brk(0, format!("cannot open: {e}")))?;
    let mut reader = BufReader::new(handle);
    let mut buf = Vec::new();
    let mut line_no = 0;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| brk(line_no + 1, format!("cannot read: {e}")))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if buf.last() != Some(&b'\n') {
            return Err(brk(
                line_no,
                "truncated record: the line has no end (the tail was cut, or the daemon was \
                 killed mid-write and has not restarted since)"
                    .into(),
            ));
        }
        let line = std::str::from_utf8(&buf[..buf.len() - 1])
            .map_err(|_| brk(line_no, "not UTF-8: the record was altered".into()))?;
        let (seq, prev, hash, value) = check_line(line).map_err(|p| brk(line_no, p))?;
        if value["phase"] == "intent" {
            let s = |k: &str| value[k].as_str().unwrap_or("-").to_string();
            open.insert(
                seq,
                Dangling {
                    seq,
                    request_id: s("request_id"),
                    method: s("method"),
                    agent: s("agent"),
                },
            );
        } else if let Some(intent) = value["intent"].as_u64() {
            open.remove(&intent);
        }
        match expect {
            Some(e) => {
                if seq != e.seq {
                    return Err(brk(
                        line_no,
                        format!(
                            "sequence {seq} where {} was expected: a record was deleted, \
                             reordered or inserted",
                            e.seq
                        ),
                    ));
                }
                if prev != e.prev {
                    return Err(brk(
                        line_no,
                        format!(
                            "record {seq} does not chain to the record before it: a record was \
                             replaced, reordered or inserted from another log"
                        ),
                    ));
                }
            }
            None => {
                if seq == 1 && prev != GENESIS {
                    return Err(brk(line_no, "record 1 must start the chain".into()));
                }
                if seq != 1 {
                    summary.notes.push(format!(
                        "{}: the chain starts at record {seq}; give the earlier (rotated) files \
                         first to verify from the beginning",
                        file.display()
                    ));
                }
                summary.first_seq = Some(seq);
            }
        }
        summary.records += 1;
        summary.last_seq = Some(seq);
        summary.last_hash = Some(hash.clone());
        *expect = Some(Expect {
            seq: seq + 1,
            prev: hash,
        });
    }
    Ok(())
}

/// Checks one record's own hash; returns (seq, prev, hash, the record).
fn check_line(line: &str) -> Result<(u64, String, String, serde_json::Value), String> {
    let suffix_len = HASH_KEY.len() + HASH_HEX_LEN + 2;
    if line.len() < suffix_len + 2 || !line.ends_with("\"}") {
        return Err("not an audit record: no hash at the end".into());
    }
    let cut = line.len() - suffix_len;
    let (body, suffix) = line.split_at(cut);
    let Some(hash) = suffix
        .strip_prefix(HASH_KEY)
        .and_then(|s| s.strip_suffix("\"}"))
    else {
        return Err("not an audit record: no hash at the end".into());
    };
    let mut hashed = String::with_capacity(body.len() + 1);
    hashed.push_str(body);
    hashed.push('}');
    let actual = hex::encode(Sha256::digest(hashed.as_bytes()));
    if actual != hash {
        return Err(format!(
            "hash mismatch: the record was changed after it was written (stored {hash}, \
             computed {actual})"
        ));
    }
    let value: serde_json::Value =
        serde_json::from_str(&hashed).map_err(|e| format!("the record is not valid JSON: {e}"))?;
    let seq = value["seq"]
        .as_u64()
        .ok_or_else(|| "the record has no seq".to_string())?;
    let prev = value["prev"]
        .as_str()
        .ok_or_else(|| "the record has no prev".to_string())?
        .to_string();
    Ok((seq, prev, hash.to_string(), value))
}

/// The head file beside the active log remembers the last record written:
/// a log that ends before it lost its tail.
fn check_head(last_file: &Path, summary: &Summary) -> Result<(), Break> {
    let Some((head_seq, head_hash)) = read_head(last_file) else {
        return Ok(());
    };
    let brk = |problem: String| Break {
        file: last_file.to_path_buf(),
        line: 0,
        problem,
    };
    match summary.last_seq {
        Some(last) if last < head_seq => Err(brk(format!(
            "truncated tail: the log ends at record {last} but record {head_seq} was written \
             (see {}.head)",
            last_file.display()
        ))),
        Some(last) if last == head_seq && summary.last_hash.as_deref() != Some(&head_hash) => {
            Err(brk(format!(
                "record {last} is not the one the daemon wrote last (hash differs from the head file)"
            )))
        }
        None if head_seq > 0 => Err(brk(format!(
            "truncated tail: the log is empty but record {head_seq} was written"
        ))),
        _ => Ok(()),
    }
}
