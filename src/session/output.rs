//! A background process's output stream, kept in bounded memory: the first
//! half of the buffer holds the stream's head, the second its newest tail;
//! what falls between is counted as lost. Reads go by absolute offset in the
//! whole stream, and may wait for more.

use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::Notify;

struct Inner {
    head: Vec<u8>,
    head_cap: usize,
    tail: VecDeque<u8>,
    tail_cap: usize,
    total: u64,
    closed: bool,
}

pub struct Stream {
    inner: Mutex<Inner>,
    more: Notify,
}

/// One read's answer.
pub struct Chunk {
    pub data: Vec<u8>,
    /// Offset of `data[0]` in the whole stream.
    pub offset: u64,
    /// Bytes between the requested offset and `offset` no longer kept.
    pub lost: u64,
    pub eof: bool,
}

impl Stream {
    pub fn new(capacity: usize) -> Stream {
        let head_cap = capacity / 2;
        Stream {
            inner: Mutex::new(Inner {
                head: Vec::new(),
                head_cap,
                tail: VecDeque::new(),
                tail_cap: capacity - head_cap,
                total: 0,
                closed: false,
            }),
            more: Notify::new(),
        }
    }

    pub fn push(&self, mut data: &[u8]) {
        if let Ok(mut s) = self.inner.lock() {
            s.total += data.len() as u64;
            let room = s.head_cap - s.head.len();
            let take = room.min(data.len());
            if take > 0 {
                s.head.extend_from_slice(&data[..take]);
                data = &data[take..];
            }
            if !data.is_empty() && s.tail_cap > 0 {
                if data.len() >= s.tail_cap {
                    s.tail.clear();
                    let from = data.len() - s.tail_cap;
                    s.tail.extend(&data[from..]);
                } else {
                    let overflow = (s.tail.len() + data.len()).saturating_sub(s.tail_cap);
                    s.tail.drain(..overflow);
                    s.tail.extend(data);
                }
            }
        }
        self.more.notify_waiters();
    }

    pub fn close(&self) {
        if let Ok(mut s) = self.inner.lock() {
            s.closed = true;
        }
        self.more.notify_waiters();
    }

    /// (bytes written, bytes lost so far).
    pub fn counts(&self) -> (u64, u64) {
        self.inner
            .lock()
            .map(|s| {
                let kept = (s.head.len() + s.tail.len()) as u64;
                (s.total, s.total - kept)
            })
            .unwrap_or_default()
    }

    /// Up to `max` bytes from `offset`, at once.
    pub fn read(&self, offset: u64, max: usize) -> Chunk {
        let Ok(s) = self.inner.lock() else {
            return Chunk {
                data: Vec::new(),
                offset,
                lost: 0,
                eof: true,
            };
        };
        let head_len = s.head.len() as u64;
        let tail_start = s.total - s.tail.len() as u64;
        let offset = offset.min(s.total);
        let (data, at): (Vec<u8>, u64) = if offset < head_len {
            let end = (offset as usize + max).min(s.head.len());
            (s.head[offset as usize..end].to_vec(), offset)
        } else {
            // Past the head: the tail, from `offset` or from its start.
            let at = offset.max(tail_start).max(head_len);
            let skip = (at - tail_start) as usize;
            (s.tail.iter().skip(skip).take(max).copied().collect(), at)
        };
        let next = at + data.len() as u64;
        Chunk {
            lost: at - offset,
            offset: at,
            eof: s.closed && next >= s.total,
            data,
        }
    }

    /// Returns once the stream has reached its end (its reader saw EOF), or
    /// at `deadline`.
    pub async fn closed_by(&self, deadline: tokio::time::Instant) {
        loop {
            let notified = self.more.notified();
            if self.inner.lock().map_or(true, |s| s.closed) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// As `read`, waiting up to `wait` for something past `offset`.
    pub async fn read_wait(&self, offset: u64, max: usize, wait: std::time::Duration) -> Chunk {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.more.notified();
            let chunk = self.read(offset, max);
            if !chunk.data.is_empty() || chunk.eof || wait.is_zero() {
                return chunk;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.read(offset, max);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_and_tail_are_kept_and_the_gap_is_counted_as_lost() {
        let s = Stream::new(8);
        s.push(b"0123456789abcdef");
        assert_eq!(s.counts(), (16, 8));
        let c = s.read(0, 100);
        assert_eq!((c.data.as_slice(), c.offset, c.lost), (&b"0123"[..], 0, 0));
        let c = s.read(4, 100);
        assert_eq!((c.data.as_slice(), c.offset, c.lost), (&b"cdef"[..], 12, 8));
        assert!(!c.eof);
        s.close();
        assert!(s.read(16, 100).eof);
    }
}
