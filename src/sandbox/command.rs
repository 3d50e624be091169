//! How a command reaches an init that is already built (issue 12, item 2).
//!
//! Every init is built in "wait for the command" mode: its setup runs to
//! the end (seccomp included), then it blocks reading one byte from a pipe.
//! The command itself (program, cwd, argv, envp) travels in a shared
//! anonymous mapping made before the clone, so init finds it at the same
//! address in its copy of the launcher's memory: the launcher lays out the
//! strings AND the NULL-terminated pointer arrays, and init only reads four
//! pointers from the header and passes them to `chdir` and `execve`. Init
//! allocates nothing and parses nothing after the clone.
//!
//! The launcher marks the mapping MADV_DONTFORK right after the clone, so
//! sandboxes cloned later do not inherit another sandbox's area.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// The area's size: the daemon's bounds on argv (or a shell string) and
/// the environment, their pointers, and room to spare. Reserved, not
/// committed: untouched pages cost nothing.
pub const AREA_BYTES: usize = 4 << 20;

/// Header: program, cwd, argv, envp (absolute pointers into the area).
const HEADER: usize = 4 * std::mem::size_of::<usize>();

/// A command area shared by the launcher and one init.
#[derive(Debug)]
pub struct CommandArea {
    base: *mut u8,
    /// The launcher's write end; init holds the read end.
    go: Option<OwnedFd>,
    /// Init's end (a raw fd in the plan; closed in the parent after clone).
    wait: Option<OwnedFd>,
}

// SAFETY: the mapping is owned by this value alone in this process.
unsafe impl Send for CommandArea {}

impl CommandArea {
    pub fn new() -> io::Result<CommandArea> {
        // SAFETY: a fresh anonymous shared mapping; checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                AREA_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let (r, w) = super::sys::pipe().map_err(|e| {
            // SAFETY: our mapping of that length.
            unsafe { libc::munmap(base, AREA_BYTES) };
            io::Error::from_raw_os_error(e)
        })?;
        Ok(CommandArea {
            base: base.cast(),
            go: Some(w),
            wait: Some(r),
        })
    }

    /// Init's raw fd to block on (read one byte: a command is in the area;
    /// EOF: the sandbox is being destroyed).
    pub fn wait_fd(&self) -> i32 {
        self.wait.as_ref().map_or(-1, |f| f.as_raw_fd())
    }

    /// The child-side view of the area (raw: init copies it as plain data).
    pub fn child_view(&self) -> ChildArea {
        ChildArea {
            base: self.base,
            wait: self.wait_fd(),
        }
    }

    /// Parent side, after the clone: later clones must not inherit the area,
    /// and init's end of the pipe is init's alone.
    pub fn after_clone(&mut self) {
        // SAFETY: our own mapping.
        unsafe { libc::madvise(self.base.cast(), AREA_BYTES, libc::MADV_DONTFORK) };
        self.wait = None;
    }

    /// Writes the command into the area and wakes init. Fails (and init is
    /// not woken) when it does not fit.
    pub fn send(
        &mut self,
        program: &Path,
        cwd: &Path,
        argv: &[String],
        env: &[(String, String)],
    ) -> io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let nul = |b: &[u8]| {
            CString::new(b)
                .map_err(|_| super::spec::invalid("argument or environment contains NUL"))
        };
        let program = nul(program.as_os_str().as_bytes())?;
        let cwd = nul(cwd.as_os_str().as_bytes())?;
        let argv: Vec<CString> = argv
            .iter()
            .map(|a| nul(a.as_bytes()))
            .collect::<io::Result<_>>()?;
        let envp: Vec<CString> = env
            .iter()
            .map(|(k, v)| nul(format!("{k}={v}").as_bytes()))
            .collect::<io::Result<_>>()?;
        let strings: usize = [&program, &cwd]
            .into_iter()
            .chain(&argv)
            .chain(&envp)
            .map(|s| s.as_bytes_with_nul().len())
            .sum();
        let word = std::mem::size_of::<usize>();
        let ptrs = (argv.len() + envp.len() + 2) * word;
        if HEADER + strings + ptrs + word > AREA_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::ArgumentListTooLong,
                "the command and its environment are too large",
            ));
        }
        let mut w = Writer {
            base: self.base,
            at: HEADER,
        };
        let program = w.string(&program);
        let cwd = w.string(&cwd);
        let argv: Vec<usize> = argv.iter().map(|s| w.string(s)).collect();
        let envp: Vec<usize> = envp.iter().map(|s| w.string(s)).collect();
        let argv = w.pointers(&argv);
        let envp = w.pointers(&envp);
        w.header([program, cwd, argv, envp]);
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let go = self.go.as_ref().map_or(-1, |f| f.as_raw_fd());
        // One byte into an empty pipe never blocks; init may be gone (EPIPE).
        // SAFETY: write of one byte from a live buffer.
        if unsafe { libc::write(go, [1u8].as_ptr().cast(), 1) } != 1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for CommandArea {
    fn drop(&mut self) {
        // SAFETY: our mapping of that length; nothing refers to it any more
        // in this process (init has its own copy of the mapping).
        unsafe { libc::munmap(self.base.cast(), AREA_BYTES) };
    }
}

/// Lays out strings and pointer arrays in the area.
struct Writer {
    base: *mut u8,
    at: usize,
}

impl Writer {
    fn string(&mut self, s: &CString) -> usize {
        let b = s.as_bytes_with_nul();
        // SAFETY: `send` checked that everything fits in the area.
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), self.base.add(self.at), b.len()) };
        let addr = self.base as usize + self.at;
        self.at += b.len();
        addr
    }
    /// A NULL-terminated array of `ptrs`, word-aligned.
    fn pointers(&mut self, ptrs: &[usize]) -> usize {
        let word = std::mem::size_of::<usize>();
        self.at = self.at.div_ceil(word) * word;
        let addr = self.base as usize + self.at;
        for p in ptrs.iter().copied().chain(std::iter::once(0)) {
            // SAFETY: aligned, inside the area (checked by `send`).
            unsafe { (self.base.add(self.at) as *mut usize).write(p) };
            self.at += word;
        }
        addr
    }
    fn header(&mut self, h: [usize; 4]) {
        for (i, v) in h.into_iter().enumerate() {
            // SAFETY: the header's words at the area's (page-aligned) start.
            unsafe { (self.base as *mut usize).add(i).write(v) };
        }
    }
}

/// Init's copy of the area's address and its pipe fd: plain data.
#[derive(Debug, Clone, Copy)]
pub struct ChildArea {
    base: *mut u8,
    wait: i32,
}

/// The command as init finds it: pointers for `chdir` and `execve`.
pub struct Command {
    pub program: *const libc::c_char,
    pub cwd: *const libc::c_char,
    pub argv: *const *const libc::c_char,
    pub envp: *const *const libc::c_char,
}

impl ChildArea {
    /// No area (the seam's unit tests never reach the wait).
    #[cfg(test)]
    pub fn for_tests() -> ChildArea {
        ChildArea {
            base: std::ptr::null_mut(),
            wait: -1,
        }
    }

    pub fn wait_fd(&self) -> i32 {
        self.wait
    }

    /// Child side: blocks until the launcher sends a command; `None` when
    /// it closed the pipe instead (the sandbox is being destroyed).
    pub fn wait(&self) -> Option<Command> {
        let mut b = [0u8; 1];
        loop {
            // SAFETY: a one-byte read into a live buffer.
            let n = unsafe { libc::read(self.wait, b.as_mut_ptr().cast(), 1) };
            if n == 1 {
                break;
            }
            if n < 0 && super::sys::last_errno() == libc::EINTR {
                continue;
            }
            return None;
        }
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let h = self.base as *const usize;
        // SAFETY: the launcher wrote the header before the byte we read.
        let word = |i| unsafe { h.add(i).read_volatile() };
        Some(Command {
            program: word(0) as *const libc::c_char,
            cwd: word(1) as *const libc::c_char,
            argv: word(2) as *const *const libc::c_char,
            envp: word(3) as *const *const libc::c_char,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn a_command_is_laid_out_with_pointers_init_can_use_as_they_are() {
        let mut area = CommandArea::new().unwrap();
        let view = area.child_view();
        area.send(
            Path::new("/bin/echo"),
            Path::new("/workspace/sub"),
            &["echo".into(), "a b".into()],
            &[("PATH".into(), "/bin".into())],
        )
        .unwrap();
        let cmd = view.wait().expect("a command");
        // SAFETY: pointers into the live area, as init would use them.
        unsafe {
            assert_eq!(CStr::from_ptr(cmd.program).to_bytes(), b"/bin/echo");
            assert_eq!(CStr::from_ptr(cmd.cwd).to_bytes(), b"/workspace/sub");
            let arg = |i| CStr::from_ptr(*cmd.argv.add(i)).to_bytes().to_vec();
            assert_eq!((arg(0), arg(1)), (b"echo".to_vec(), b"a b".to_vec()));
            assert!((*cmd.argv.add(2)).is_null());
            assert_eq!(CStr::from_ptr(*cmd.envp).to_bytes(), b"PATH=/bin");
            assert!((*cmd.envp.add(1)).is_null());
        }
    }

    #[test]
    fn too_large_a_command_is_refused_and_init_is_not_woken() {
        let mut area = CommandArea::new().unwrap();
        let big = vec!["x".repeat(1 << 20); 5];
        let e = area
            .send(Path::new("/bin/true"), Path::new("/"), &big, &[])
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ArgumentListTooLong);
        let view = area.child_view();
        drop(area.go.take());
        assert!(view.wait().is_none(), "EOF, no command");
    }
}
