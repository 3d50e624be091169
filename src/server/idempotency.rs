//! Safe retries: answers to mutating calls that carried an
//! `idempotency_key`, kept for `WINDOW`, so a retry of a call whose answer
//! was lost gets that answer again instead of a second write.
//!
//! A key belongs to one agent and one method. The same key with the same
//! request (byte-for-byte, sha256) replays the stored answer; with another
//! request it is refused. Only successes are kept: a failed call frees its
//! key, so a retry runs again. Memory is bounded by `MAX_ENTRIES` and
//! `MAX_BYTES` (the oldest answers go first).
//!
//! A mutating RPC takes part like this: its request is `Idempotent` (the
//! key, and what counts as the same request), and its work runs through
//! `Idempotency::once` with `Call::new(agent, method, &request)` and what
//! to keep of a success; on `Once::Replayed` it answers and records the
//! stored answer (after the role and rate checks, as for any call).

use crate::error::{Reason, ToolError};
use prost::Message;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an answer is replayed.
pub const WINDOW: Duration = Duration::from_secs(600);
/// Keys remembered at once, over every agent.
pub const MAX_ENTRIES: usize = 10_000;
/// Bytes of stored answers at once.
pub const MAX_BYTES: usize = 64 << 20;
/// Longest key accepted.
pub const MAX_KEY_BYTES: usize = 128;

type Key = (String, &'static str, String);

enum Slot {
    /// The first call is still running.
    Running,
    Done(Arc<Stored>),
}

/// A first answer, encoded.
pub struct Stored {
    pub response: Vec<u8>,
    pub request_id: String,
    pub rule: String,
}

impl Stored {
    /// The rule a replay's record and answer name.
    pub fn replay_rule(&self) -> String {
        format!(
            "{} (idempotent replay of request {})",
            self.rule, self.request_id
        )
    }
}

/// A request that may carry an `idempotency_key` (the mutating ones do).
pub trait Idempotent: Message + Sized {
    fn idempotency_key(&self) -> &str {
        ""
    }

    /// What counts as the same request: the request byte for byte.
    fn fingerprint(&self) -> [u8; 32] {
        fingerprint(&self.encode_to_vec())
    }
}

/// Requests with an environment map: the request, its environment in name
/// order (protobuf maps have no order of their own on the wire).
macro_rules! keyed_with_env {
    ($($req:ty),*) => {$(
        impl Idempotent for $req {
            fn idempotency_key(&self) -> &str {
                &self.idempotency_key
            }

            fn fingerprint(&self) -> [u8; 32] {
                let mut plain = self.clone();
                plain.env.clear();
                fingerprint_with_map(&plain.encode_to_vec(), &self.env)
            }
        }
    )*};
}

keyed_with_env!(crate::proto::ExecRequest, crate::proto::StartProcessRequest);

/// A call as its key sees it: whose, which method, which key (empty: none)
/// and which request.
pub struct Call {
    agent: String,
    method: &'static str,
    key: String,
    fingerprint: [u8; 32],
}

impl Call {
    pub fn new(agent: &str, method: &'static str, request: &impl Idempotent) -> Self {
        let key = request.idempotency_key().to_string();
        // A call without a key is never fingerprinted.
        let fingerprint = if key.is_empty() {
            [0; 32]
        } else {
            request.fingerprint()
        };
        Call {
            agent: agent.to_string(),
            method,
            key,
            fingerprint,
        }
    }
}

/// How a call through `Idempotency::once` went.
pub enum Once<Resp, Done> {
    /// It ran (it had no key, or was the first with its key): the work's own
    /// result.
    Ran(Done),
    /// A retry of a success: the first answer, decoded, and where it came
    /// from.
    Replayed(Resp, Arc<Stored>),
}

struct Entry {
    fingerprint: [u8; 32],
    slot: Slot,
    expires: Instant,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    /// Insertion order, for expiry and eviction.
    order: VecDeque<(Instant, Key)>,
    bytes: usize,
}

#[derive(Default)]
pub struct Idempotency {
    inner: Arc<Mutex<Inner>>,
}

/// What to do with a call that carries a key.
enum Begin {
    /// Run it; `Claim::finish` stores the answer.
    Run(Claim),
    /// Answer this again.
    Replay(Arc<Stored>),
}

/// The key, held while the first call runs; freed if it is dropped
/// unfinished (the call failed).
struct Claim {
    inner: Arc<Mutex<Inner>>,
    key: Option<Key>,
}

fn fingerprint(encoded_request: &[u8]) -> [u8; 32] {
    Sha256::digest(encoded_request).into()
}

/// The fingerprint of a request with a map field: `encoded_without_map` is
/// the request with the map cleared, `map` its entries (taken in name
/// order, each part length-prefixed).
fn fingerprint_with_map(
    encoded_without_map: &[u8],
    map: &std::collections::HashMap<String, String>,
) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(encoded_without_map);
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort();
    for (name, value) in entries {
        for part in [name, value] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
    }
    hasher.finalize().into()
}

impl Idempotency {
    /// The begin / replay / claim sequence of every keyed call. A call
    /// without a key just runs. The first with its key runs `run`, and its
    /// success is kept as `keep` makes it (`None` keeps nothing: the key is
    /// free again); a retry of the same request gets that answer back
    /// instead, decoded as `Resp`. The outer error refuses the call before
    /// any work (a bad key, a key used for another request, the first
    /// still running); a failed or dropped `run` frees the key.
    pub async fn once<Resp, Out, E, Fut>(
        &self,
        call: Call,
        run: impl FnOnce() -> Fut,
        keep: impl FnOnce(&Out) -> Option<Stored>,
    ) -> Result<Once<Resp, Result<Out, E>>, ToolError>
    where
        Resp: Message + Default,
        Fut: Future<Output = Result<Out, E>>,
    {
        if call.key.is_empty() {
            return Ok(Once::Ran(run().await));
        }
        match self.begin(&call.agent, call.method, &call.key, call.fingerprint)? {
            Begin::Replay(first) => {
                let response = Resp::decode(first.response.as_slice())
                    .map_err(|e| ToolError::internal(format!("a stored answer is corrupt: {e}")))?;
                Ok(Once::Replayed(response, first))
            }
            Begin::Run(claim) => {
                let done = run().await;
                if let Some(stored) = done.as_ref().ok().and_then(keep) {
                    claim.finish(stored);
                }
                Ok(Once::Ran(done))
            }
        }
    }

    fn begin(
        &self,
        agent: &str,
        method: &'static str,
        key: &str,
        fingerprint: [u8; 32],
    ) -> Result<Begin, ToolError> {
        if key.len() > MAX_KEY_BYTES || key.chars().any(char::is_control) {
            return Err(ToolError::invalid(format!(
                "idempotency_key must be at most {MAX_KEY_BYTES} bytes with no control \
                 characters; use a UUID"
            )));
        }
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.expire(now);
        let k: Key = (agent.to_string(), method, key.to_string());
        if let Some(entry) = inner.entries.get(&k) {
            if entry.fingerprint != fingerprint {
                return Err(ToolError::new(
                    Reason::IdempotencyKeyReused,
                    format!(
                        "idempotency_key {key:?} was used for a different {method} request in \
                         the last {} s; use a new key for a new request",
                        WINDOW.as_secs()
                    ),
                )
                .with("idempotency_key", key));
            }
            return match &entry.slot {
                Slot::Done(stored) => Ok(Begin::Replay(stored.clone())),
                Slot::Running => Err(ToolError::new(
                    Reason::Unavailable,
                    format!(
                        "the first {method} with idempotency_key {key:?} is still running; \
                         retry in a moment to get its answer"
                    ),
                )),
            };
        }
        inner.evict_for(0);
        inner.entries.insert(
            k.clone(),
            Entry {
                fingerprint,
                slot: Slot::Running,
                expires: now + WINDOW,
            },
        );
        inner.order.push_back((now + WINDOW, k.clone()));
        Ok(Begin::Run(Claim {
            inner: self.inner.clone(),
            key: Some(k),
        }))
    }
}

impl Claim {
    /// Stores the first answer for replays.
    fn finish(mut self, stored: Stored) {
        let Some(key) = self.key.take() else { return };
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let size = stored.response.len();
        if size > MAX_BYTES / 4 {
            inner.entries.remove(&key);
            return;
        }
        inner.evict_for(size);
        if let Some(entry) = inner.entries.get_mut(&key) {
            entry.slot = Slot::Done(Arc::new(stored));
            inner.bytes += size;
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.entries.remove(&key);
        }
    }
}

impl Inner {
    fn stored_bytes(entry: &Entry) -> usize {
        match &entry.slot {
            Slot::Done(s) => s.response.len(),
            Slot::Running => 0,
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some(entry) = self.entries.remove(key) {
            self.bytes -= Self::stored_bytes(&entry);
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((expires, _)) = self.order.front() {
            if *expires > now {
                break;
            }
            let (_, key) = self.order.pop_front().unwrap();
            // The entry may have been freed and the key used again since.
            if self.entries.get(&key).is_some_and(|e| e.expires <= now) {
                self.remove(&key);
            }
        }
    }

    /// Drops the oldest answers until one more entry of `size` bytes fits.
    fn evict_for(&mut self, size: usize) {
        while (self.entries.len() >= MAX_ENTRIES || self.bytes + size > MAX_BYTES)
            && !self.order.is_empty()
        {
            let (_, key) = self.order.pop_front().unwrap();
            self.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_maps_order_does_not_change_the_fingerprint_but_its_content_does() {
        let a: std::collections::HashMap<String, String> = (0..20)
            .map(|i| (format!("K{i}"), format!("v{i}")))
            .collect();
        let mut b = std::collections::HashMap::new();
        for (k, v) in a.iter().collect::<Vec<_>>().into_iter().rev() {
            b.insert(k.clone(), v.clone());
        }
        assert_eq!(
            fingerprint_with_map(b"req", &a),
            fingerprint_with_map(b"req", &b)
        );
        b.insert("K0".into(), "other".into());
        assert_ne!(
            fingerprint_with_map(b"req", &a),
            fingerprint_with_map(b"req", &b)
        );
        // Parts are length-prefixed: moving bytes between name and value shows.
        let x = std::collections::HashMap::from([("ab".to_string(), "c".to_string())]);
        let y = std::collections::HashMap::from([("a".to_string(), "bc".to_string())]);
        assert_ne!(fingerprint_with_map(b"", &x), fingerprint_with_map(b"", &y));
    }

    fn stored(s: &str) -> Stored {
        Stored {
            response: s.as_bytes().to_vec(),
            request_id: "r1".into(),
            rule: "rule".into(),
        }
    }

    #[test]
    fn same_request_replays_other_request_is_refused() {
        let ids = Idempotency::default();
        let Begin::Run(claim) = ids.begin("a", "WriteFile", "k", [1; 32]).unwrap() else {
            panic!("first call must run")
        };
        // While it runs, a retry is told to wait.
        assert!(ids.begin("a", "WriteFile", "k", [1; 32]).is_err());
        claim.finish(stored("answer"));
        match ids.begin("a", "WriteFile", "k", [1; 32]).unwrap() {
            Begin::Replay(s) => assert_eq!(s.response, b"answer"),
            Begin::Run(_) => panic!("must replay"),
        }
        let e = ids.begin("a", "WriteFile", "k", [2; 32]).err().unwrap();
        assert_eq!(e.reason, Reason::IdempotencyKeyReused);
        // Keys are per agent and per method.
        assert!(matches!(
            ids.begin("b", "WriteFile", "k", [2; 32]),
            Ok(Begin::Run(_))
        ));
        assert!(matches!(
            ids.begin("a", "Remove", "k", [2; 32]),
            Ok(Begin::Run(_))
        ));
    }

    #[test]
    fn a_failed_call_frees_its_key() {
        let ids = Idempotency::default();
        drop(ids.begin("a", "WriteFile", "k", [1; 32]).unwrap());
        assert!(matches!(
            ids.begin("a", "WriteFile", "k", [2; 32]),
            Ok(Begin::Run(_))
        ));
    }

    use crate::proto::{ExecRequest, ExecResult};
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    fn keyed_run(key: &str, argv: &str) -> ExecRequest {
        ExecRequest {
            argv: vec![argv.into()],
            idempotency_key: key.into(),
            ..Default::default()
        }
    }

    /// Runs `req` through `once`, answering `answer` (counted in `runs`)
    /// and keeping it if `keep`.
    async fn once_with(
        ids: &Idempotency,
        req: &ExecRequest,
        answer: Result<&str, ToolError>,
        keep: bool,
        runs: &AtomicUsize,
    ) -> Result<Once<ExecResult, Result<ExecResult, ToolError>>, ToolError> {
        ids.once(
            Call::new("a", "Run", req),
            || async {
                runs.fetch_add(1, SeqCst);
                answer.map(|id| ExecResult {
                    exec_id: id.into(),
                    ..Default::default()
                })
            },
            |result: &ExecResult| {
                keep.then(|| Stored {
                    response: result.encode_to_vec(),
                    request_id: result.exec_id.clone(),
                    rule: "rule".into(),
                })
            },
        )
        .await
    }

    fn ran(once: Once<ExecResult, Result<ExecResult, ToolError>>) -> Result<String, ToolError> {
        match once {
            Once::Ran(done) => done.map(|r| r.exec_id),
            Once::Replayed(..) => panic!("expected a run, got a replay"),
        }
    }

    #[tokio::test]
    async fn once_runs_the_first_call_and_replays_its_success() {
        let ids = Idempotency::default();
        let runs = AtomicUsize::new(0);
        let req = keyed_run("k", "true");
        let first = once_with(&ids, &req, Ok("r1"), true, &runs).await;
        assert_eq!(ran(first.unwrap()).unwrap(), "r1");
        match once_with(&ids, &req, Ok("r2"), true, &runs).await.unwrap() {
            Once::Replayed(answer, first) => {
                assert_eq!(answer.exec_id, "r1");
                assert_eq!(
                    first.replay_rule(),
                    "rule (idempotent replay of request r1)"
                );
            }
            Once::Ran(_) => panic!("a retry must replay"),
        }
        assert_eq!(runs.load(SeqCst), 1);
        // Another request under the key is refused without running.
        let other = once_with(&ids, &keyed_run("k", "false"), Ok("r3"), true, &runs).await;
        assert_eq!(other.err().unwrap().reason, Reason::IdempotencyKeyReused);
        assert_eq!(runs.load(SeqCst), 1);
    }

    #[test]
    fn a_keyed_requests_fingerprint_ignores_its_environments_order() {
        let mut a = keyed_run("k", "env");
        let mut b = a.clone();
        for i in 0..20 {
            a.env.insert(format!("V{i}"), i.to_string());
        }
        for i in (0..20).rev() {
            b.env.insert(format!("V{i}"), i.to_string());
        }
        assert_eq!(a.fingerprint(), b.fingerprint());
        b.env.insert("V0".into(), "other".into());
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[tokio::test]
    async fn once_without_a_key_runs_every_time() {
        let ids = Idempotency::default();
        let runs = AtomicUsize::new(0);
        let req = keyed_run("", "true");
        for id in ["r1", "r2"] {
            let done = once_with(&ids, &req, Ok(id), true, &runs).await.unwrap();
            assert_eq!(ran(done).unwrap(), id);
        }
        assert_eq!(runs.load(SeqCst), 2);
        assert!(ids.inner.lock().unwrap().entries.is_empty());
    }

    #[tokio::test]
    async fn once_frees_the_key_after_a_failure_or_an_answer_not_kept() {
        let ids = Idempotency::default();
        let runs = AtomicUsize::new(0);
        let req = keyed_run("k", "true");
        let failed = once_with(&ids, &req, Err(ToolError::internal("boom")), true, &runs).await;
        assert!(ran(failed.unwrap()).is_err());
        let not_kept = once_with(&ids, &req, Ok("r2"), false, &runs).await;
        assert_eq!(ran(not_kept.unwrap()).unwrap(), "r2");
        // Both freed the key: a third call runs, even with another request.
        let other = once_with(&ids, &keyed_run("k", "false"), Ok("r3"), true, &runs).await;
        assert_eq!(ran(other.unwrap()).unwrap(), "r3");
        assert_eq!(runs.load(SeqCst), 3);
    }

    #[test]
    fn memory_is_bounded() {
        let ids = Idempotency::default();
        for i in 0..MAX_ENTRIES + 10 {
            if let Begin::Run(c) = ids.begin("a", "Move", &i.to_string(), [0; 32]).unwrap() {
                c.finish(stored("x"));
            }
        }
        let inner = ids.inner.lock().unwrap();
        assert!(inner.entries.len() <= MAX_ENTRIES);
        assert!(
            !inner
                .entries
                .contains_key(&("a".into(), "Move", "0".into()))
        );
    }
}
