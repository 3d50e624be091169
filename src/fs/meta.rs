//! File metadata in the shape the tools need, taken from `fstat`/`fstatat`.

use crate::proto::EntryKind;
use rustix::fs::{FileType, Stat};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    /// FIFO, socket, device: never opened for reading or writing.
    Other,
}

impl Kind {
    pub(crate) fn entry_kind(self) -> EntryKind {
        match self {
            Kind::File => EntryKind::File,
            Kind::Dir => EntryKind::Dir,
            Kind::Symlink => EntryKind::Symlink,
            Kind::Other => EntryKind::Other,
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Kind::File => "a file",
            Kind::Dir => "a directory",
            Kind::Symlink => "a symlink",
            Kind::Other => "not a regular file (a FIFO, socket or device)",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub kind: Kind,
    /// Permission bits (`st_mode & 0o7777`).
    pub perm: u32,
    pub size: u64,
    pub nlink: u64,
    pub uid: u32,
    pub dev: u64,
    pub ino: u64,
    pub mtime_sec: i64,
    pub mtime_nsec: u32,
    /// Status change time: unlike mtime, no one can set it back.
    pub ctime_sec: i64,
    pub ctime_nsec: u32,
}

impl Meta {
    // The field types differ between architectures (u32 on one, u64 on
    // another): convert losslessly, even where that is a no-op here.
    #[allow(clippy::useless_conversion)]
    pub(crate) fn from_stat(st: &Stat) -> Self {
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        };
        Meta {
            kind,
            perm: st.st_mode & 0o7777,
            size: u64::try_from(st.st_size).unwrap_or(0),
            nlink: u64::from(st.st_nlink),
            uid: st.st_uid,
            dev: u64::from(st.st_dev),
            ino: u64::from(st.st_ino),
            mtime_sec: i64::from(st.st_mtime),
            mtime_nsec: u32::try_from(st.st_mtime_nsec).unwrap_or(0),
            ctime_sec: i64::from(st.st_ctime),
            ctime_nsec: u32::try_from(st.st_ctime_nsec).unwrap_or(0),
        }
    }

    pub(crate) fn mtime(&self) -> prost_types::Timestamp {
        prost_types::Timestamp {
            seconds: self.mtime_sec,
            nanos: i32::try_from(self.mtime_nsec).unwrap_or(0),
        }
    }

    /// Same inode as `other` (used to notice a swap between two looks).
    pub(crate) fn same_inode(&self, other: &Meta) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}
