//! Drives one sandboxed command from the async side: feeds stdin, reads
//! stdout and stderr as they come, enforces the timeout, the idle timeout
//! and cancellation, and collects the figures once it has ended. The
//! privileged setup happened in the launcher; nothing here is privileged.

use super::output::HeadTail;
use crate::audit::StreamDigest;
use crate::proto::{ExecEvent, ExecExited, OutputChunk, exec_event};
use crate::sandbox::{ExitInfo, SandboxChild, Termination};
use sha2::{Digest, Sha256};
use std::io;
use std::os::fd::AsFd;
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

/// How long to wait for the pipes to close once the command has ended
/// (the kernel kills the rest of its pid namespace with it).
const DRAIN_GRACE: Duration = Duration::from_secs(2);
const READ_CHUNK: usize = 64 * 1024;

/// Per-call limits the driver enforces.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub timeout: Duration,
    pub idle: Option<Duration>,
    /// Bytes kept (Run) or streamed (Exec) of each of stdout and stderr.
    pub budget: usize,
}

/// Where output goes.
pub enum Sink {
    /// Run: keep head and tail within the budget.
    Capture { stdout: HeadTail, stderr: HeadTail },
    /// Exec: stream up to the budget, count the rest.
    Stream(mpsc::Sender<Result<ExecEvent, tonic::Status>>),
}

/// What happened, for the `Exited` event.
pub struct Finished {
    pub exit: ExitInfo,
    pub timed_out: bool,
    pub idle_timed_out: bool,
    pub cancelled: bool,
    pub stdout: StreamDigest,
    pub stderr: StreamDigest,
    pub sink: Sink,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Out,
    Err,
}

/// Counts and hashes a whole stream (the audit record carries its size and
/// sha256), whatever part of it is kept.
struct Counter {
    total: u64,
    budget: u64,
    hasher: Sha256,
}

impl Counter {
    fn new(budget: usize) -> Counter {
        Counter {
            total: 0,
            budget: budget as u64,
            hasher: Sha256::new(),
        }
    }

    fn saw(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        self.hasher.update(data);
    }

    /// The part of `data` still within the budget.
    fn within<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        let room = self.budget.saturating_sub(self.total) as usize;
        self.saw(data);
        &data[..room.min(data.len())]
    }

    fn digest(self) -> StreamDigest {
        StreamDigest {
            bytes: self.total,
            sha256: hex::encode(self.hasher.finalize()),
        }
    }
}

/// What became of a chunk of output.
enum Pushed {
    Done,
    /// The client is not keeping up: hold this event, read no more output
    /// until it fits (the timers keep running meanwhile).
    Held(Result<ExecEvent, tonic::Status>),
    /// The client has gone away.
    Closed,
}

impl Sink {
    fn push(&mut self, which: Which, counter: &mut Counter, data: &[u8]) -> Pushed {
        match self {
            Sink::Capture { stdout, stderr } => {
                counter.saw(data);
                match which {
                    Which::Out => stdout.push(data),
                    Which::Err => stderr.push(data),
                }
                Pushed::Done
            }
            Sink::Stream(tx) => {
                let kept = counter.within(data);
                if kept.is_empty() {
                    return if tx.is_closed() {
                        Pushed::Closed
                    } else {
                        Pushed::Done
                    };
                }
                let chunk = OutputChunk {
                    data: kept.to_vec(),
                };
                let event = match which {
                    Which::Out => exec_event::Event::Stdout(chunk),
                    Which::Err => exec_event::Event::Stderr(chunk),
                };
                match tx.try_send(Ok(ExecEvent { event: Some(event) })) {
                    Ok(()) => Pushed::Done,
                    Err(mpsc::error::TrySendError::Full(event)) => Pushed::Held(event),
                    Err(mpsc::error::TrySendError::Closed(_)) => Pushed::Closed,
                }
            }
        }
    }

    /// Room for one held event (never, for Capture).
    async fn room(&self) -> Option<mpsc::Permit<'_, Result<ExecEvent, tonic::Status>>> {
        match self {
            Sink::Stream(tx) => tx.reserve().await.ok(),
            Sink::Capture { .. } => std::future::pending().await,
        }
    }

    /// Whether output of `counter`'s stream is past what is streamed, so
    /// that reading more of it needs a turn of the shared drain.
    fn past_budget(&self, counter: &Counter) -> bool {
        matches!(self, Sink::Stream(_)) && counter.total >= counter.budget
    }

    /// Until the client's stream has taken every event sent (it returns at
    /// once if the client has gone: the next push then says so).
    async fn taken(&self) {
        if let Sink::Stream(tx) = self {
            let _all = tx.reserve_many(tx.max_capacity()).await;
        }
    }

    async fn closed(&self) {
        match self {
            Sink::Stream(tx) => tx.closed().await,
            Sink::Capture { .. } => std::future::pending().await,
        }
    }
}

/// The runtime's reader of an output pipe: made non-blocking here, not
/// checked with an fstat (a descriptor that is no pipe but can be polled
/// only reads as one; one that cannot be polled fails the registration).
fn receiver(file: Option<std::fs::File>) -> io::Result<Option<pipe::Receiver>> {
    file.map(|f| {
        crate::sandbox::set_nonblocking(f.as_fd())?;
        pipe::Receiver::from_file_unchecked(f)
    })
    .transpose()
}

/// Output past an Exec's budget is only counted and hashed, and only as fast
/// as `EXEC_PAST_BUDGET_BYTES_PER_SEC` for every stream of the daemon
/// together: each read of such output first takes a turn here, so a hundred
/// streams whose clients never read cost what one does. Turns are granted
/// in order (a fair semaphore), and only the stream at the head of the
/// queue waits on the rate: the others sleep without waking.
struct PastBudgetDrain {
    rate: governor::DefaultDirectRateLimiter,
    queue: tokio::sync::Semaphore,
}

/// One turn of the drain: this many bytes may be read.
const DRAIN_TURN: usize = READ_CHUNK;
const DRAIN_CELL: usize = 4096;

fn past_budget_drain() -> &'static PastBudgetDrain {
    static DRAIN: std::sync::LazyLock<PastBudgetDrain> = std::sync::LazyLock::new(|| {
        let cells = crate::limits::EXEC_PAST_BUDGET_BYTES_PER_SEC / DRAIN_CELL as u32;
        let per_second = std::num::NonZeroU32::new(cells).unwrap_or(std::num::NonZeroU32::MIN);
        PastBudgetDrain {
            rate: governor::RateLimiter::direct(governor::Quota::per_second(per_second)),
            queue: tokio::sync::Semaphore::new(1),
        }
    });
    &DRAIN
}

impl PastBudgetDrain {
    /// Waits for a turn: `DRAIN_TURN` bytes of the shared rate, taken
    /// before they are read.
    async fn turn(&self) {
        use governor::clock::{Clock, DefaultClock};
        let Ok(_head) = self.queue.acquire().await else {
            return;
        };
        let cells = std::num::NonZeroU32::new(DRAIN_TURN.div_ceil(DRAIN_CELL) as u32)
            .unwrap_or(std::num::NonZeroU32::MIN);
        loop {
            match self.rate.check_n(cells) {
                Ok(Ok(())) => return,
                Ok(Err(not_until)) => {
                    tokio::time::sleep(not_until.wait_time_from(DefaultClock::default().now()))
                        .await
                }
                // A turn larger than a second's worth: never, as the rate
                // is at least one turn a second; wait that second.
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    }
}

/// What `drive` drives: a command in a sandbox of its own, or one started
/// in a session by its supervisor.
pub enum Running {
    Sandbox(SandboxChild),
    Session(crate::session::Command),
}

impl Running {
    /// Host pid (the sandbox's init, or the session's process).
    pub fn pid(&self) -> u32 {
        match self {
            Running::Sandbox(c) => c.pid as u32,
            Running::Session(c) => c.host_pid(),
        }
    }

    fn take_stdio(
        &mut self,
    ) -> (
        Option<std::fs::File>,
        Option<std::fs::File>,
        Option<std::fs::File>,
    ) {
        match self {
            Running::Sandbox(c) => c.take_stdio(),
            Running::Session(c) => c.take_stdio(),
        }
    }

    fn kill_tree(&self) {
        match self {
            Running::Sandbox(c) => c.kill_tree(),
            Running::Session(c) => c.kill_tree(),
        }
    }

    fn ended(&self) -> io::Result<Ended> {
        match self {
            Running::Sandbox(c) => {
                let pidfd = c.pidfd().try_clone_to_owned()?;
                // SAFETY: the AsyncFd owns the OwnedFd, which stays open and
                // the same until the AsyncFd is dropped.
                let fd = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }
                    .map_err(|e| io::Error::other(e.to_string()))?;
                Ok(Ended::Pidfd(fd))
            }
            Running::Session(c) => Ok(Ended::Notice(c.exit_watch())),
        }
    }

    async fn finish(self) -> io::Result<ExitInfo> {
        match self {
            Running::Sandbox(mut child) => tokio::task::spawn_blocking(move || {
                let info = child.wait();
                drop(child);
                info
            })
            .await
            .map_err(io::Error::other)?,
            Running::Session(c) => c.finish().await,
        }
    }
}

/// Becomes ready once the command has ended.
enum Ended {
    Pidfd(AsyncFd<std::os::fd::OwnedFd>),
    Notice(tokio::sync::watch::Receiver<Option<crate::session::supervisor::Exit>>),
}

impl Ended {
    async fn ready(&mut self) {
        match self {
            Ended::Pidfd(fd) => {
                if let Ok(mut guard) = fd.readable().await {
                    guard.retain_ready();
                }
            }
            Ended::Notice(rx) => {
                let _ = rx.wait_for(Option::is_some).await;
            }
        }
    }
}

/// Drives `child` to its end. Cancelling `cancel` (the client went away)
/// kills the tree and ends as `cancelled`. Dropping the future kills the
/// whole tree too (the child's Drop), so nothing is left behind.
pub async fn drive(
    mut child: Running,
    stdin: Vec<u8>,
    limits: Deadlines,
    mut sink: Sink,
    cancel: tokio_util::sync::CancellationToken,
) -> io::Result<Finished> {
    let (stdin_pipe, stdout, stderr) = child.take_stdio();
    let mut ended = child.ended()?;
    let mut out = receiver(stdout)?;
    let mut err = receiver(stderr)?;
    if let Some(file) = stdin_pipe {
        let mut sender = pipe::Sender::from_file(file)?;
        // A command that never reads its stdin must not hold up the call.
        tokio::spawn(async move {
            let _ = sender.write_all(&stdin).await;
        });
    }

    let started = Instant::now();
    let deadline = started + limits.timeout;
    let mut idle_deadline = limits.idle.map(|d| started + d);
    let mut drain_deadline: Option<Instant> = None;
    let mut out_counter = Counter::new(limits.budget);
    let mut err_counter = Counter::new(limits.budget);
    let (mut timed_out, mut idle_timed_out, mut cancelled, mut killed) =
        (false, false, false, false);
    let mut out_buf = vec![0u8; READ_CHUNK];
    let mut err_buf = vec![0u8; READ_CHUNK];
    let far = started + Duration::from_secs(365 * 24 * 3600);

    let mut held: Option<Result<ExecEvent, tonic::Status>> = None;
    // Past an Exec's budget (see `PastBudgetDrain`): a pipe with output
    // waiting for a turn, and a turn granted and not yet used.
    let mut drain_wanted = false;
    let mut drain_turn = false;
    loop {
        if drain_deadline.is_some() && out.is_none() && err.is_none() {
            break;
        }
        // Once the command has ended, what is left is at most the pipes'
        // buffers: read it without turns.
        let command_ended = drain_deadline.is_some();
        let out_past = !command_ended && sink.past_budget(&out_counter);
        let err_past = !command_ended && sink.past_budget(&err_counter);
        // The command's silence is timed only while its output is being
        // read: not while the daemon holds it back for a slow client.
        let listening = held.is_none() && !drain_wanted;
        // One step of output, taken out of the select so that the pipes'
        // buffers can be borrowed again for the next round.
        let mut got: Option<(Which, usize)> = None;
        tokio::select! {
            // Past the budget, output waiting is noticed (the command is
            // not idle) before a turn is asked for, and read only with one.
            r = next_output(&mut out, &mut out_buf, !out_past || drain_turn), if out.is_some() && held.is_none() && (!out_past || drain_turn || !drain_wanted) => {
                match r {
                    Output::Read(Ok(n)) if n > 0 => got = Some((Which::Out, n)),
                    Output::Read(_) => out = None,
                    Output::Waiting => {
                        drain_wanted = true;
                        idle_deadline = limits.idle.map(|d| Instant::now() + d);
                    }
                }
            }
            r = next_output(&mut err, &mut err_buf, !err_past || drain_turn), if err.is_some() && held.is_none() && (!err_past || drain_turn || !drain_wanted) => {
                match r {
                    Output::Read(Ok(n)) if n > 0 => got = Some((Which::Err, n)),
                    Output::Read(_) => err = None,
                    Output::Waiting => {
                        drain_wanted = true;
                        idle_deadline = limits.idle.map(|d| Instant::now() + d);
                    }
                }
            }
            // A turn only once the client has taken everything sent: one
            // that stopped reading holds the command on its pipe.
            _ = async { sink.taken().await; past_budget_drain().turn().await }, if drain_wanted => {
                drain_wanted = false;
                drain_turn = true;
                idle_deadline = limits.idle.map(|d| Instant::now() + d);
            }
            permit = sink.room(), if held.is_some() => {
                match (permit, held.take()) {
                    (Some(permit), Some(event)) => {
                        permit.send(event);
                        idle_deadline = limits.idle.map(|d| Instant::now() + d);
                    }
                    _ => {
                        if !killed {
                            cancelled = true;
                            killed = true;
                            child.kill_tree();
                        }
                    }
                }
            }
            _ = ended.ready(), if drain_deadline.is_none() => {
                drain_deadline = Some(Instant::now() + DRAIN_GRACE);
                drain_wanted = false;
            }
            _ = sleep_until(deadline), if !killed => {
                timed_out = true;
                killed = true;
                child.kill_tree();
            }
            _ = sleep_until(idle_deadline.unwrap_or(far)), if !killed && listening && idle_deadline.is_some() => {
                idle_timed_out = true;
                killed = true;
                child.kill_tree();
            }
            _ = cancel.cancelled(), if !killed => {
                cancelled = true;
                killed = true;
                child.kill_tree();
            }
            _ = sink.closed(), if !killed => {
                cancelled = true;
                killed = true;
                child.kill_tree();
            }
            _ = sleep_until(drain_deadline.unwrap_or(far)), if drain_deadline.is_some() => {
                // Something still holds the pipes (or the client stopped
                // reading): end it all.
                child.kill_tree();
                break;
            }
        }
        if let Some((which, n)) = got {
            idle_deadline = limits.idle.map(|d| Instant::now() + d);
            let (buf, counter) = match which {
                Which::Out => (&out_buf[..n], &mut out_counter),
                Which::Err => (&err_buf[..n], &mut err_counter),
            };
            if sink.past_budget(counter) {
                drain_turn = false;
            }
            match sink.push(which, counter, buf) {
                Pushed::Done => {}
                Pushed::Held(event) => held = Some(event),
                Pushed::Closed => {
                    if !killed {
                        cancelled = true;
                        killed = true;
                        child.kill_tree();
                    }
                }
            }
        }
    }
    let exit = child.finish().await?;
    Ok(Finished {
        exit,
        timed_out,
        idle_timed_out,
        cancelled,
        stdout: out_counter.digest(),
        stderr: err_counter.digest(),
        sink,
    })
}

/// What a pipe had: output read, or (when it may not be read yet) output
/// waiting.
enum Output {
    Read(io::Result<usize>),
    Waiting,
}

async fn next_output(pipe: &mut Option<pipe::Receiver>, buf: &mut [u8], may_read: bool) -> Output {
    match pipe {
        Some(p) if may_read => Output::Read(p.read(buf).await),
        Some(p) => {
            let _ = p.readable().await;
            Output::Waiting
        }
        None => std::future::pending().await,
    }
}

/// The `Exited` event for a finished command.
pub fn exited_event(f: &Finished, budget: u64) -> ExecExited {
    let (exit_code, signal) = match f.exit.termination {
        Termination::Exited(code) => (Some(code), None),
        Termination::Signaled(sig) => (None, Some(sig)),
    };
    let cpu = f.exit.user_cpu + f.exit.system_cpu;
    ExecExited {
        exit_code,
        signal,
        timed_out: f.timed_out,
        idle_timed_out: f.idle_timed_out,
        cancelled: f.cancelled,
        oom_killed: f.exit.oom_killed,
        wall_time_ms: f.exit.wall.as_millis() as u64,
        cpu_time_ms: cpu.as_millis() as u64,
        peak_memory_bytes: f
            .exit
            .cgroup
            .peak_memory_bytes
            .unwrap_or(f.exit.max_rss_bytes),
        stdout_bytes: f.stdout.bytes,
        stderr_bytes: f.stderr.bytes,
        stdout_truncated: f.stdout.bytes > budget,
        stderr_truncated: f.stderr.bytes > budget,
        info: None,
    }
}
