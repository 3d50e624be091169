//! A pool of empty network namespaces, created on a background thread so
//! that the ~0.25 ms (plus asynchronous teardown) of `CLONE_NEWNET` stays off
//! the launch path. Each namespace is used once: sharing one would let two
//! sandboxes meet on its loopback or abstract sockets.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Condvar, Mutex, OnceLock};

struct Pool {
    ready: Mutex<Vec<OwnedFd>>,
    wanted: Condvar,
    size: usize,
}

static POOL: OnceLock<Pool> = OnceLock::new();

/// How many fresh namespaces the launcher keeps ready, so creating one
/// (about 3 ms here) is off the critical path of a command.
pub const POOL_SIZE: usize = 8;

/// Starts the refill thread (idempotent). Without it, launches create their
/// namespace with `CLONE_NEWNET` instead.
pub fn start_pool(size: usize) -> std::io::Result<()> {
    if POOL.get().is_some() || size == 0 {
        return Ok(());
    }
    let _ = POOL.set(Pool {
        ready: Mutex::new(Vec::with_capacity(size)),
        wanted: Condvar::new(),
        size,
    });
    std::thread::Builder::new()
        .name("netns-pool".into())
        .spawn(refill)?;
    Ok(())
}

/// A fresh, never-used network namespace, if one is ready.
pub fn take() -> Option<OwnedFd> {
    let pool = POOL.get()?;
    let fd = pool.ready.lock().ok()?.pop();
    pool.wanted.notify_one();
    fd
}

fn create_one(home: &File) -> std::io::Result<OwnedFd> {
    // unshare/setns change only this thread's namespace.
    // SAFETY: plain syscalls on this dedicated thread.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let ns = File::open("/proc/thread-self/ns/net");
    // SAFETY: returning this thread to the namespace it started in.
    if unsafe { libc::setns(home.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        // Stuck in a foreign namespace: stop producing rather than leak it.
        return Err(std::io::Error::last_os_error());
    }
    Ok(ns?.into())
}

fn refill() {
    let Some(pool) = POOL.get() else { return };
    let Ok(home) = File::open("/proc/thread-self/ns/net") else {
        return;
    };
    loop {
        {
            let Ok(mut ready) = pool.ready.lock() else {
                return;
            };
            while ready.len() >= pool.size {
                ready = match pool.wanted.wait(ready) {
                    Ok(r) => r,
                    Err(_) => return,
                };
            }
        }
        match create_one(&home) {
            Ok(fd) => match pool.ready.lock() {
                Ok(mut r) => r.push(fd),
                Err(_) => return,
            },
            Err(_) => return,
        }
    }
}
