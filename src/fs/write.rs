//! WriteFile, and the atomic replace that WriteFile and EditFile share.
//!
//! A file is never written in place: the new content goes to a fresh
//! `.agentjail-<random>.tmp` file (`O_EXCL`) in the same directory, which is
//! synced, given the old file's permission bits (0644 for a new file, setuid
//! and setgid bits dropped) and the workspace owner, then renamed over the
//! target, and the directory is synced. Readers see the old or the new
//! content, never a mix, and a hardlink's other names keep the old content.
//! The temporary file is removed on every error path.
//!
//! The checks made just before the rename (mode, `expected_sha256`) and the
//! rename itself run under a striped lock ([`super::lock`]), so two calls of
//! this daemon writing the same file are serialised. `CREATE_ONLY` uses
//! `renameat2(RENAME_NOREPLACE)`, which is atomic against anyone.

use super::Outcome;
use super::access::{check_hardlink, precheck, require};
use super::lock::{PathLocks, lock_paths};
use super::meta::{Kind, Meta};
use super::mkdir::create_missing;
use super::oserror::{io_error, os_error};
use super::owner::give_to_owner;
use super::path::{RelPath, display, split_last};
use super::resolve::{
    Follow, OpenError, Resolved, not_regular, open_beneath, open_dir, open_regular_in, resolve,
    stat_in,
};
use super::scan::{parse_expected_sha, read_bounded, scan_reader, sha256_hex};
use crate::error::{Reason, ToolError, ToolResult};
use crate::policy::{Access, Limits, WorkspacePolicy};
use crate::proto::{WriteFileRequest, WriteFileResponse, WriteMode};
use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use std::fs::File;
use std::io::Write;
use std::sync::Arc;

/// Permission bits of a file the daemon creates.
const NEW_FILE_MODE: u32 = 0o644;

pub fn write_file(
    ws: &WorkspacePolicy,
    limits: &Limits,
    req: &WriteFileRequest,
) -> ToolResult<Outcome<WriteFileResponse>> {
    let rel = RelPath::parse_entry_in(&ws.path, &req.path)?;
    // First, before anything else: a 1 GiB request is refused at once.
    let size = req.content.len() as u64;
    if size > limits.max_write_bytes {
        return Err(ToolError::new(
            Reason::TooLarge,
            format!(
                "content is {size} bytes, more than the {}-byte write limit; write a smaller file",
                limits.max_write_bytes
            ),
        )
        .with("path", &req.path)
        .with("limit", limits.max_write_bytes.to_string()));
    }
    let mode = WriteMode::try_from(req.mode).map_err(|_| {
        ToolError::invalid(format!(
            "unknown write mode {}; use CREATE_ONLY, OVERWRITE or UPSERT",
            req.mode
        ))
    })?;
    let expected = parse_expected_sha(&req.expected_sha256).map_err(ToolError::invalid)?;
    precheck(ws, Access::Write, &rel.to_path_string())?;
    let res = resolve(ws, &rel, Follow::Last)?;
    let (target, rule) = writable_target(ws, &res, req.create_parents)?;

    let prepared = Prepared::new(ws, &target)?;
    let existed = prepared.existing.is_some();
    match mode {
        WriteMode::CreateOnly if existed => {
            return Err(ToolError::new(
                Reason::AlreadyExists,
                format!(
                    "`{target}` already exists; use mode OVERWRITE or UPSERT to replace it, or edit_file to change it"
                ),
            )
            .with("path", &target))
        }
        WriteMode::Overwrite if !existed => {
            return Err(ToolError::new(
                Reason::NotFound,
                format!("`{target}` does not exist; use mode CREATE_ONLY or UPSERT to create it"),
            )
            .with("path", &target))
        }
        _ => {}
    }
    let previous = prepared.existing_sha(limits, expected.is_some())?;
    if let Some(expected) = expected {
        check_expected(&target, &expected, previous.as_deref())?;
    }
    prepared.commit(ws, &req.content, mode == WriteMode::CreateOnly)?;

    Ok(Outcome::new(
        WriteFileResponse {
            path: target,
            sha256: sha256_hex(&req.content),
            previous_sha256: previous.unwrap_or_default(),
            bytes_written: size,
            created: !existed,
            info: None,
        },
        rule,
    ))
}

/// Checks that `res` can be written as a regular file (creating its parent
/// directories when asked) and returns its canonical path and the rule that
/// allows writing it.
pub(crate) fn writable_target(
    ws: &WorkspacePolicy,
    res: &Resolved,
    create_parents: bool,
) -> ToolResult<(String, Arc<str>)> {
    let target = res.path();
    if target.is_empty() {
        return Err(not_regular(&target, Kind::Dir));
    }
    match res.kind() {
        None | Some(Kind::File) => {}
        Some(kind) => return Err(not_regular(&target, kind)),
    }
    let rule = require(ws, Access::Write, &res.lexical, &target, false)?;
    if !res.parent_exists() {
        let parent = split_last(&target).0;
        if !create_parents {
            return Err(ToolError::new(
                Reason::NotFound,
                format!(
                    "directory `{}` does not exist; pass create_parents to create it",
                    display(parent)
                ),
            )
            .with("path", &target));
        }
        create_missing(
            ws,
            &res.comps[..res.comps.len() - 1],
            res.existing,
            (&target, false),
        )?;
    }
    Ok((target, rule))
}

/// STALE_CONTENT unless the file's current sha256 is `expected`.
pub(crate) fn check_expected(path: &str, expected: &str, current: Option<&str>) -> ToolResult<()> {
    let current = current.unwrap_or("");
    if current == expected {
        return Ok(());
    }
    let now = if current.is_empty() {
        "does not exist".to_string()
    } else {
        format!("has sha256 {current}")
    };
    Err(ToolError::new(
        Reason::StaleContent,
        format!(
            "`{path}` changed since it was read (expected sha256 {expected}, it now {now}); read it again and retry"
        ),
    )
    .with("path", path)
    .with("expected_sha256", expected)
    .with("current_sha256", current))
}

/// A file about to be replaced: its directory is open, its stripe locked,
/// and what it currently is has been looked at again under the lock.
pub(crate) struct Prepared {
    _locks: PathLocks,
    pub path: String,
    parent: OwnedFd,
    name: String,
    /// The file being replaced, if there is one.
    pub existing: Option<Meta>,
}

impl Prepared {
    pub(crate) fn new(ws: &WorkspacePolicy, path: &str) -> ToolResult<Self> {
        let locks = lock_paths(ws, &[path]);
        let (parent_path, name) = split_last(path);
        let parent = open_dir(ws, parent_path)?;
        let existing = match stat_in(&parent, name) {
            Ok(meta) => Some(meta),
            Err(Errno::NOENT) => None,
            Err(e) => return Err(os_error("inspect", path, e)),
        };
        if let Some(meta) = &existing {
            match meta.kind {
                Kind::File => check_hardlink(ws, meta, path, Access::Write)?,
                Kind::Symlink => {
                    return Err(ToolError::new(
                        Reason::SymlinkEscape,
                        format!("`{path}` changed into a symlink during the call; retry"),
                    )
                    .with("path", path));
                }
                kind => return Err(not_regular(path, kind)),
            }
        }
        Ok(Prepared {
            _locks: locks,
            path: path.to_string(),
            parent,
            name: name.to_string(),
            existing,
        })
    }

    /// Opens the file being replaced, checking it is still the one seen.
    fn open_existing(&self) -> ToolResult<Option<File>> {
        let Some(seen) = self.existing else {
            return Ok(None);
        };
        let (file, meta) = open_regular_in(&self.parent, &self.name).map_err(|e| match e {
            OpenError::Os(e) => os_error("open", &self.path, e),
            OpenError::NotRegular(kind) => not_regular(&self.path, kind),
        })?;
        if !meta.same_inode(&seen) {
            return Err(ToolError::new(
                Reason::Unavailable,
                format!("`{}` was replaced during the call; retry", self.path),
            )
            .with("path", &self.path));
        }
        Ok(Some(file))
    }

    /// The current content's sha256 (`None` when there is no file). For a
    /// file over `max_file_bytes` this is `Some("")` unless `required`, in
    /// which case it is TOO_LARGE.
    pub(crate) fn existing_sha(
        &self,
        limits: &Limits,
        required: bool,
    ) -> ToolResult<Option<String>> {
        let Some(meta) = self.existing else {
            return Ok(None);
        };
        if meta.size > limits.max_file_bytes {
            if required {
                return Err(self.too_large(limits));
            }
            return Ok(Some(String::new()));
        }
        let Some(file) = self.open_existing()? else {
            return Ok(None);
        };
        let summary = scan_reader(&file, limits.max_file_bytes)
            .map_err(|e| io_error("read", &self.path, &e))?;
        Ok(Some(summary.sha256))
    }

    /// The current content, at most `max_file_bytes` of it.
    pub(crate) fn read_existing(&self, limits: &Limits) -> ToolResult<Option<Vec<u8>>> {
        let Some(file) = self.open_existing()? else {
            return Ok(None);
        };
        match read_bounded(&file, limits.max_file_bytes) {
            Ok(Some(data)) => Ok(Some(data)),
            Ok(None) => Err(self.too_large(limits)),
            Err(e) => Err(io_error("read", &self.path, &e)),
        }
    }

    fn too_large(&self, limits: &Limits) -> ToolError {
        ToolError::new(
            Reason::TooLarge,
            format!(
                "`{}` is larger than the {}-byte file limit; it cannot be checked or edited through the daemon",
                self.path, limits.max_file_bytes
            ),
        )
        .with("path", &self.path)
    }

    /// Writes `content` to a temporary file and renames it over the target.
    /// With `no_replace`, fails with ALREADY_EXISTS if a file appeared.
    pub(crate) fn commit(
        &self,
        ws: &WorkspacePolicy,
        content: &[u8],
        no_replace: bool,
    ) -> ToolResult<()> {
        let perm = self.existing.map_or(NEW_FILE_MODE, |m| m.perm & 0o777);
        let mut tmp = TempFile::create(&self.parent)
            .map_err(|e| os_error("create a temporary file for", &self.path, e))?;
        tmp.file
            .write_all(content)
            .map_err(|e| io_error("write", &self.path, &e))?;
        give_to_owner(ws, &tmp.file, &self.path)?;
        rustix::fs::fchmod(&tmp.file, Mode::from_raw_mode(perm))
            .map_err(|e| os_error("set the mode of", &self.path, e))?;
        rustix::fs::fsync(&tmp.file).map_err(|e| os_error("sync", &self.path, e))?;
        if no_replace {
            match rustix::fs::renameat_with(
                &self.parent,
                tmp.name.as_str(),
                &self.parent,
                self.name.as_str(),
                RenameFlags::NOREPLACE,
            ) {
                Ok(()) => tmp.armed = false,
                // The filesystem lacks RENAME_NOREPLACE: a hard link also
                // fails if the name exists; the temp name is then removed.
                Err(Errno::INVAL) => rustix::fs::linkat(
                    &self.parent,
                    tmp.name.as_str(),
                    &self.parent,
                    self.name.as_str(),
                    AtFlags::empty(),
                )
                .map_err(|e| os_error("create", &self.path, e))?,
                Err(e) => return Err(os_error("create", &self.path, e)),
            }
        } else {
            rustix::fs::renameat(
                &self.parent,
                tmp.name.as_str(),
                &self.parent,
                self.name.as_str(),
            )
            .map_err(|e| os_error("replace", &self.path, e))?;
            tmp.armed = false;
        }
        // The content is in place; a failed directory sync only weakens
        // durability across a crash, so it is not reported.
        let _ = rustix::fs::fsync(&self.parent);
        Ok(())
    }
}

/// A temporary file that removes itself unless it was renamed into place.
struct TempFile<'a> {
    dir: &'a OwnedFd,
    name: String,
    file: File,
    armed: bool,
}

impl<'a> TempFile<'a> {
    fn create(dir: &'a OwnedFd) -> Result<Self, Errno> {
        let mut attempts = 0;
        loop {
            let name = format!(".agentjail-{:016x}.tmp", rand::random::<u64>());
            match open_beneath(
                dir,
                &name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(fd) => {
                    return Ok(TempFile {
                        dir,
                        name,
                        file: File::from(fd),
                        armed: true,
                    });
                }
                Err(Errno::EXIST) if attempts < 8 => attempts += 1,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = rustix::fs::unlinkat(self.dir, self.name.as_str(), AtFlags::empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::testutil::{Fixture, Rules, is_root};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn req(path: &str, content: &str) -> WriteFileRequest {
        WriteFileRequest {
            path: path.to_string(),
            content: content.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn creates_and_replaces() {
        let fx = Fixture::new();
        let out = write_file(&fx.ws, &fx.limits, &req("a.txt", "one")).unwrap();
        assert!(out.response.created);
        assert_eq!(out.response.sha256, sha256_hex(b"one"));
        assert_eq!(out.response.previous_sha256, "");
        assert_eq!(&*out.rule, "test: write[\"**\"]");
        let meta = std::fs::metadata(fx.abs("a.txt")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);

        std::fs::set_permissions(fx.abs("a.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
        let out = write_file(&fx.ws, &fx.limits, &req("a.txt", "two")).unwrap();
        assert!(!out.response.created);
        assert_eq!(out.response.previous_sha256, sha256_hex(b"one"));
        assert_eq!(fx.read("a.txt"), b"two");
        let meta = std::fs::metadata(fx.abs("a.txt")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "mode kept");
        assert_eq!(fx.names(""), ["a.txt"], "no temp file left");
    }

    #[test]
    fn modes_and_expected_sha() {
        let fx = Fixture::new();
        let mut r = req("a.txt", "x");
        r.mode = WriteMode::Overwrite as i32;
        assert_eq!(
            write_file(&fx.ws, &fx.limits, &r).unwrap_err().reason,
            Reason::NotFound
        );
        r.mode = WriteMode::CreateOnly as i32;
        write_file(&fx.ws, &fx.limits, &r).unwrap();
        assert_eq!(
            write_file(&fx.ws, &fx.limits, &r).unwrap_err().reason,
            Reason::AlreadyExists
        );
        r.mode = WriteMode::Upsert as i32;
        r.expected_sha256 = sha256_hex(b"not it");
        let err = write_file(&fx.ws, &fx.limits, &r).unwrap_err();
        assert_eq!(err.reason, Reason::StaleContent);
        assert_eq!(
            err.metadata_value("current_sha256"),
            Some(sha256_hex(b"x").as_str())
        );
        r.expected_sha256 = sha256_hex(b"x");
        r.content = b"y".to_vec();
        write_file(&fx.ws, &fx.limits, &r).unwrap();
        assert_eq!(fx.read("a.txt"), b"y");
        r.mode = 42;
        assert_eq!(
            write_file(&fx.ws, &fx.limits, &r).unwrap_err().reason,
            Reason::InvalidArgument
        );
        assert_eq!(fx.names(""), ["a.txt"]);
    }

    #[test]
    fn parents_are_created_only_when_asked() {
        let fx = Fixture::new();
        let mut r = req("x/y/z.txt", "deep");
        assert_eq!(
            write_file(&fx.ws, &fx.limits, &r).unwrap_err().reason,
            Reason::NotFound
        );
        assert!(!fx.exists("x"));
        r.create_parents = true;
        write_file(&fx.ws, &fx.limits, &r).unwrap();
        assert_eq!(fx.read("x/y/z.txt"), b"deep");
    }

    #[test]
    fn refusals() {
        let fx = Fixture::new();
        fx.dir("d");
        let cases = [
            ("d", Reason::IsADirectory),
            ("", Reason::InvalidArgument),
            ("a/..", Reason::InvalidArgument),
            (".env", Reason::PolicyDenied),
            ("sub/key.pem", Reason::PolicyDenied),
            ("../escape.txt", Reason::PathOutsideWorkspace),
        ];
        for (path, reason) in cases {
            let err = write_file(&fx.ws, &fx.limits, &req(path, "x")).unwrap_err();
            assert_eq!(err.reason, reason, "{path}: {err}");
        }
        assert_eq!(fx.names(""), ["d"]);
    }

    #[test]
    fn huge_write_is_refused_before_anything_happens() {
        let fx = Fixture::new();
        let limits = Limits {
            max_write_bytes: 16 * 1024 * 1024,
            ..fx.limits
        };
        let r = WriteFileRequest {
            path: "big.bin".into(),
            content: vec![0u8; 1 << 30],
            ..Default::default()
        };
        let err = write_file(&fx.ws, &limits, &r).unwrap_err();
        assert_eq!(err.reason, Reason::TooLarge);
        assert!(!fx.exists("big.bin"));
    }

    #[test]
    fn read_only_workspace_and_write_globs() {
        let fx = Fixture::with_rules(Rules {
            read_only: true,
            ..Rules::default()
        });
        let err = write_file(&fx.ws, &fx.limits, &req("a.txt", "x")).unwrap_err();
        assert_eq!(err.reason, Reason::ReadOnlyWorkspace);
        assert!(!fx.exists("a.txt"));

        let fx = Fixture::with_rules(Rules {
            write: &["src/**"],
            ..Rules::default()
        });
        fx.dir("src");
        write_file(&fx.ws, &fx.limits, &req("src/a.rs", "x")).unwrap();
        let err = write_file(&fx.ws, &fx.limits, &req("README.md", "x")).unwrap_err();
        assert_eq!(err.reason, Reason::PolicyDenied);
        assert!(
            err.metadata_value("rule")
                .unwrap()
                .contains("no files.write glob")
        );
    }

    #[test]
    fn new_files_belong_to_the_workspace_owner() {
        if !is_root() {
            return;
        }
        let mut fx = Fixture::new();
        fx.ws.owner_uid = 4242;
        fx.ws.owner_gid = 4343;
        let mut r = req("d/new.txt", "x");
        r.create_parents = true;
        write_file(&fx.ws, &fx.limits, &r).unwrap();
        for p in ["d", "d/new.txt"] {
            let meta = std::fs::metadata(fx.abs(p)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (4242, 4343), "{p}");
        }
    }

    #[test]
    fn concurrent_writers_never_mix() {
        let fx = Fixture::new();
        let contents: Vec<Vec<u8>> = (0..8u8).map(|i| vec![b'a' + i; 200_000]).collect();
        std::thread::scope(|s| {
            for content in &contents {
                let (fx, contents) = (&fx, &contents);
                s.spawn(move || {
                    for _ in 0..5 {
                        let r = WriteFileRequest {
                            path: "shared.txt".into(),
                            content: content.clone(),
                            ..Default::default()
                        };
                        write_file(&fx.ws, &fx.limits, &r).unwrap();
                        let now = fx.read("shared.txt");
                        assert!(contents.contains(&now), "mixed or partial content");
                    }
                });
            }
        });
        assert_eq!(fx.names(""), ["shared.txt"]);
    }

    #[test]
    fn concurrent_create_only_has_one_winner() {
        let fx = Fixture::new();
        let wins = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for i in 0..8 {
                let (fx, wins) = (&fx, &wins);
                s.spawn(move || {
                    let r = WriteFileRequest {
                        path: "once.txt".into(),
                        content: vec![b'0' + i; 10],
                        mode: WriteMode::CreateOnly as i32,
                        ..Default::default()
                    };
                    match write_file(&fx.ws, &fx.limits, &r) {
                        Ok(_) => {
                            wins.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        Err(e) => assert_eq!(e.reason, Reason::AlreadyExists),
                    }
                });
            }
        });
        assert_eq!(wins.into_inner(), 1);
        assert_eq!(fx.names(""), ["once.txt"], "losers left no temp file");
    }
}
