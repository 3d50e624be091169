//! Output kept within a budget: the first half and the last half of what a
//! command printed, with the bytes between them counted, not stored. The
//! error at the end of a long build survives; daemon memory stays bounded.

use std::collections::VecDeque;

#[derive(Debug)]
pub struct HeadTail {
    head: Vec<u8>,
    head_cap: usize,
    tail: VecDeque<u8>,
    tail_cap: usize,
    total: u64,
}

impl HeadTail {
    /// Keeps at most `budget` bytes: half head, half tail.
    pub fn new(budget: usize) -> Self {
        let head_cap = budget / 2;
        let tail_cap = budget - head_cap;
        HeadTail {
            head: Vec::with_capacity(head_cap.min(64 * 1024)),
            head_cap,
            tail: VecDeque::with_capacity(tail_cap.min(64 * 1024)),
            tail_cap,
            total: 0,
        }
    }

    pub fn push(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        let room = self.head_cap - self.head.len();
        if room > 0 {
            let take = room.min(data.len());
            self.head.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        if self.tail_cap == 0 || data.is_empty() {
            return;
        }
        if data.len() >= self.tail_cap {
            self.tail.clear();
            self.tail.extend(&data[data.len() - self.tail_cap..]);
            return;
        }
        let overflow = (self.tail.len() + data.len()).saturating_sub(self.tail_cap);
        self.tail.drain(..overflow);
        self.tail.extend(data);
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes printed but not kept.
    pub fn omitted(&self) -> u64 {
        self.total - self.head.len() as u64 - self.tail.len() as u64
    }

    pub fn truncated(&self) -> bool {
        self.omitted() > 0
    }

    /// (head, tail, omitted, total)
    pub fn finish(self) -> (Vec<u8>, Vec<u8>, u64, u64) {
        let omitted = self.omitted();
        (self.head, self.tail.into(), omitted, self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_output_is_kept_whole_in_the_head() {
        let mut b = HeadTail::new(10);
        b.push(b"abc");
        assert_eq!(b.finish(), (b"abc".to_vec(), vec![], 0, 3));
    }

    #[test]
    fn long_output_keeps_head_and_tail_and_counts_the_rest() {
        let mut b = HeadTail::new(6);
        for chunk in [&b"0123"[..], b"4567", b"89"] {
            b.push(chunk);
        }
        assert_eq!(b.finish(), (b"012".to_vec(), b"789".to_vec(), 4, 10));
    }

    #[test]
    fn one_huge_chunk_keeps_its_ends() {
        let mut b = HeadTail::new(4);
        b.push(&[b'x'; 1000]);
        b.push(b"END");
        assert_eq!(b.finish(), (b"xx".to_vec(), b"ND".to_vec(), 999, 1003));
    }
}
