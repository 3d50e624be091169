//! The audit log writer: one thread, group commit (many calls share one
//! fdatasync), a hash chain that continues across restarts and rotations,
//! and space reserved ahead so a record never fails for lack of space after
//! its call has done its work.

use super::record::{GENESIS, HASH_HEX_LEN, seal};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::oneshot;

/// Most records written by one fdatasync.
const MAX_BATCH: usize = 4096;

/// Answers an append with the record's sequence number, or why it failed.
pub(crate) type AppendReply = oneshot::Sender<Result<u64, String>>;

pub(crate) enum Job {
    /// A record's entry, serialised as a JSON object by the caller.
    Append(String, AppendReply),
    /// Try to make the log writable again; answers whether it is.
    Recover(oneshot::Sender<bool>),
    Rotate,
}

/// Settings of the writer.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub path: PathBuf,
    /// Rotate once the file reaches this size.
    pub max_file_bytes: u64,
    /// Space kept allocated beyond the end of the file.
    pub reserve_bytes: u64,
}

/// State shared with the async side.
pub(crate) struct Shared {
    pub healthy: AtomicBool,
    pub last_error: Mutex<String>,
    /// Records handed to the writer and not yet answered (a metric).
    pub queued: AtomicUsize,
    /// (dev, ino) of the file being written, so admission can notice the
    /// log being removed or replaced before a call does any work.
    pub identity: Mutex<(u64, u64)>,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            healthy: true.into(),
            last_error: Mutex::new(String::new()),
            queued: 0.into(),
            identity: Mutex::new((0, 0)),
        }
    }

    fn set_identity(&self, identity: (u64, u64)) {
        if let Ok(mut id) = self.identity.lock() {
            *id = identity;
        }
    }
}

impl Shared {
    fn fail(&self, error: String) {
        if self.healthy.swap(false, Ordering::SeqCst) {
            tracing::error!(
                "AUDIT LOG UNAVAILABLE: {error}; calls are refused until it can be written again"
            );
        }
        if let Ok(mut last) = self.last_error.lock() {
            *last = error;
        }
    }

    fn recovered(&self) {
        if !self.healthy.swap(true, Ordering::SeqCst) {
            tracing::warn!("audit log writable again; accepting calls");
        }
    }
}

/// The open log file and the chain's position.
struct Log {
    cfg: WriterConfig,
    file: Option<File>,
    /// (dev, ino) of `file`, to notice the path being removed or replaced.
    identity: (u64, u64),
    size: u64,
    reserved_to: u64,
    seq: u64,
    prev: String,
    /// The head file, kept open: it is rewritten after every batch.
    head: Option<File>,
}

/// Opens (or resumes) the log and starts the writer thread.
pub(crate) fn start(cfg: WriterConfig, shared: Arc<Shared>) -> io::Result<mpsc::Sender<Job>> {
    let mut log = Log::resume(cfg)?;
    shared.set_identity(log.identity);
    if let Err(e) = log.reserve() {
        shared.fail(format!(
            "cannot reserve space in {}: {e}",
            log.cfg.path.display()
        ));
    }
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("agentjail-audit".into())
        .spawn(move || run(log, rx, shared))?;
    Ok(tx)
}

fn run(mut log: Log, rx: mpsc::Receiver<Job>, shared: Arc<Shared>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut appends = Vec::new();
        for job in jobs {
            match job {
                Job::Append(entry, reply) => appends.push((entry, reply)),
                Job::Recover(reply) => {
                    let ok = log.recover(&shared);
                    shared.set_identity(log.identity);
                    let _ = reply.send(ok);
                }
                Job::Rotate => {
                    if let Err(e) = log.rotate() {
                        shared.fail(format!("rotation failed: {e}"));
                    }
                }
            }
        }
        if !appends.is_empty() {
            log.commit(appends, &shared);
            shared.set_identity(log.identity);
        }
    }
}

impl Log {
    /// Opens the log at `cfg.path`, dropping an incomplete final record
    /// (left by a crash mid-write), and continues its chain.
    fn resume(cfg: WriterConfig) -> io::Result<Log> {
        if let Some(dir) = cfg.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = open_log(&cfg.path)?;
        // One writer per log: a second daemon on the same file would fork
        // the chain.
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(io::Error::other(format!(
                "{} is locked by another process (another daemon writing the same audit log?)",
                cfg.path.display()
            )));
        }
        let (seq, prev, size) = match last_record(&mut file, &cfg.path)? {
            Some((seq, hash, size)) => (seq, hash, size),
            None => {
                let (seq, hash) = read_head(&cfg.path).unwrap_or((0, GENESIS.to_string()));
                (seq, hash, 0)
            }
        };
        let meta = file.metadata()?;
        Ok(Log {
            identity: (meta.dev(), meta.ino()),
            size,
            reserved_to: size,
            seq,
            prev,
            file: Some(file),
            head: None,
            cfg,
        })
    }

    fn commit(&mut self, appends: Vec<(String, AppendReply)>, shared: &Shared) {
        // No health gate here: calls were admitted while the log was
        // healthy, and the space reserved then is what their records use.
        let (start_seq, start_prev) = (self.seq, self.prev.clone());
        let mut buf = String::with_capacity(appends.len() * 1024);
        let mut seqs = Vec::with_capacity(appends.len());
        for (entry, _) in &appends {
            self.seq += 1;
            let time = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
            let (line, hash) = seal(self.seq, &time, &self.prev, entry);
            buf.push_str(&line);
            self.prev = hash;
            seqs.push(self.seq);
        }
        match self.write_durably(buf.as_bytes()) {
            Ok(()) => {
                for ((_, reply), seq) in appends.into_iter().zip(seqs) {
                    let _ = reply.send(Ok(seq));
                }
                self.write_head();
                if let Err(e) = self.reserve() {
                    // This batch is safe; the reserve covers the calls in
                    // flight. New calls are refused until space returns.
                    shared.fail(format!(
                        "cannot reserve space in {}: {e}",
                        self.cfg.path.display()
                    ));
                }
                if self.size >= self.cfg.max_file_bytes {
                    if let Err(e) = self.rotate() {
                        shared.fail(format!("rotation failed: {e}"));
                    }
                }
            }
            Err(e) => {
                self.seq = start_seq;
                self.prev = start_prev;
                let error = format!("cannot write {}: {e}", self.cfg.path.display());
                shared.fail(error.clone());
                for (_, reply) in appends {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// Appends `bytes` and syncs them; on failure the file is cut back so
    /// no unacknowledged record stays in it.
    fn write_durably(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.follow_path()?;
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("log not open"))?;
        let before = self.size;
        let result = file.write_all(bytes).and_then(|_| file.sync_data());
        match result {
            Ok(()) => {
                self.size += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = file.set_len(before);
                Err(e)
            }
        }
    }

    /// Reopens the log if its path was removed or replaced, so records never
    /// go to an unlinked file. The chain continues in the new file.
    fn follow_path(&mut self) -> io::Result<()> {
        let current = std::fs::metadata(&self.cfg.path).map(|m| (m.dev(), m.ino()));
        if self.file.is_some() && current.as_ref().ok() == Some(&self.identity) {
            return Ok(());
        }
        tracing::error!(
            path = %self.cfg.path.display(),
            "the audit log file was removed or replaced; starting a new file that continues the chain"
        );
        self.reopen()
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.file = None;
        self.head = None;
        if let Some(dir) = self.cfg.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = open_log(&self.cfg.path)?;
        // A file someone put there is continued from its own end.
        if let Some((seq, hash, size)) = last_record(&mut file, &self.cfg.path)? {
            if seq >= self.seq {
                self.seq = seq;
                self.prev = hash;
            }
            self.size = size;
        } else {
            self.size = 0;
        }
        let meta = file.metadata()?;
        self.identity = (meta.dev(), meta.ino());
        self.reserved_to = self.size;
        self.file = Some(file);
        Ok(())
    }

    /// Keeps `reserve_bytes` allocated past the end (without growing the
    /// file), so appends cannot hit ENOSPC.
    fn reserve(&mut self) -> io::Result<()> {
        if self.reserved_to >= self.size + self.cfg.reserve_bytes / 2 {
            return Ok(());
        }
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| io::Error::other("log not open"))?;
        let len = self.cfg.reserve_bytes as i64;
        // SAFETY: fallocate on an fd we own; KEEP_SIZE leaves the size alone.
        let r = unsafe {
            libc::fallocate(
                file.as_raw_fd(),
                libc::FALLOC_FL_KEEP_SIZE,
                self.size as i64,
                len,
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            // Filesystems without fallocate cannot reserve; writing still
            // fails closed, just later.
            if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
                self.reserved_to = self.size + self.cfg.reserve_bytes;
                return Ok(());
            }
            return Err(e);
        }
        self.reserved_to = self.size + self.cfg.reserve_bytes;
        Ok(())
    }

    fn recover(&mut self, shared: &Shared) -> bool {
        let result = self
            .follow_path()
            .and_then(|_| {
                // Prove the file takes a write again.
                let file = self
                    .file
                    .as_ref()
                    .ok_or_else(|| io::Error::other("log not open"))?;
                file.sync_data()
            })
            .and_then(|_| {
                self.reserved_to = 0;
                self.reserve()
            });
        match result {
            Ok(()) => {
                shared.recovered();
                true
            }
            Err(e) => {
                shared.fail(format!("{}: {e}", self.cfg.path.display()));
                false
            }
        }
    }

    /// Renames the file to `<path>.<last seq>` and starts a new one; the
    /// first record of the new file chains to the last of the old.
    fn rotate(&mut self) -> io::Result<()> {
        if self.size == 0 {
            return Ok(());
        }
        let rotated = PathBuf::from(format!("{}.{:012}", self.cfg.path.display(), self.seq));
        std::fs::rename(&self.cfg.path, &rotated)?;
        tracing::info!(rotated = %rotated.display(), seq = self.seq, "audit log rotated");
        self.reopen()?;
        if let Some(dir) = self.cfg.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.reserve()
    }

    /// Records the chain's head beside the log (not synced: it only needs
    /// to survive a process crash). `audit verify` uses it to notice a log
    /// whose last records were cut off.
    fn write_head(&mut self) {
        let line = format!("{:020} {}\n", self.seq, self.prev);
        let path = head_path(&self.cfg.path);
        if self.head.is_none() {
            self.head = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o640)
                .open(&path)
                .map_err(|e| tracing::warn!("cannot open {}: {e}", path.display()))
                .ok();
        }
        if let Some(head) = &self.head {
            if let Err(e) = head.write_all_at(line.as_bytes(), 0) {
                tracing::warn!("cannot update {}: {e}", path.display());
                self.head = None;
            }
        }
    }
}

fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

/// `<log>.head`: the sequence number and hash of the chain's last record.
pub fn head_path(log: &Path) -> PathBuf {
    PathBuf::from(format!("{}.head", log.display()))
}

/// Reads a head file: `(seq, hash)`.
pub fn read_head(log: &Path) -> Option<(u64, String)> {
    let text = std::fs::read_to_string(head_path(log)).ok()?;
    let (seq, hash) = text.trim().split_once(' ')?;
    let hash = hash.trim();
    (hash.len() == HASH_HEX_LEN).then(|| Some((seq.parse().ok()?, hash.to_string())))?
}

/// The last complete record's (seq, hash) and the size up to its end.
/// Cuts off an incomplete final line (a write a crash interrupted).
fn last_record(file: &mut File, path: &Path) -> io::Result<Option<(u64, String, u64)>> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    let window = len.min(1 << 20);
    file.seek(SeekFrom::Start(len - window))?;
    let mut tail = Vec::with_capacity(window as usize);
    file.take(window).read_to_end(&mut tail)?;
    let complete_end = match tail.iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        None if window == len => 0,
        None => {
            return Err(io::Error::other(
                "the audit log's last line is over 1 MiB; it is not a log this daemon wrote",
            ));
        }
    };
    let complete_len = len - window + complete_end as u64;
    if complete_len < len {
        tracing::warn!(
            path = %path.display(), bytes = len - complete_len,
            "removing an incomplete final audit record (the daemon stopped mid-write)"
        );
        file.set_len(complete_len)?;
    }
    let body = &tail[..complete_end];
    let Some(last) = body
        .strip_suffix(b"\n")
        .map(|b| b.rsplit(|&c| c == b'\n').next().unwrap_or(b))
    else {
        return Ok(None);
    };
    let value: serde_json::Value = serde_json::from_slice(last).map_err(|e| {
        io::Error::other(format!(
            "the last audit record cannot be read ({e}); run `agentjail audit verify`"
        ))
    })?;
    let seq = value["seq"].as_u64();
    let hash = value["hash"].as_str();
    match (seq, hash) {
        (Some(seq), Some(hash)) => Ok(Some((seq, hash.to_string(), complete_len))),
        _ => Err(io::Error::other(
            "the last audit record has no seq or hash; run `agentjail audit verify`",
        )),
    }
}
