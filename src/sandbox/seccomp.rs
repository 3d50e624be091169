//! The seccomp deny-list, compiled once in the parent and installed last.
//!
//! The BPF is generated here rather than by seccompiler's `SeccompFilter`:
//! that emits one linear check per syscall, and install time grows with the
//! length of the paths through the program (see `search`). seccompiler is
//! still used to install the program.

use std::io;
use std::sync::OnceLock;

use seccompiler::{BpfProgram, sock_filter};

use super::sys::Errno;

// Newer syscalls that libc 0.2 does not name yet (x86_64 numbers).
const SYS_OPEN_TREE_ATTR: i64 = 467;
const SYS_FCHMODAT2: i64 = 452;

/// Calls that set a file's mode, with the index of their mode argument. A
/// mode with the setuid or setgid bit is refused (EPERM): the workspace is
/// nosuid inside the sandbox but not on the host, where such a file would
/// run as the sandbox's uid or gid for whoever starts it. (The daemon's
/// unit cannot do this for its commands: systemd's RestrictSUIDSGID= would
/// also take openat2 from the daemon.)
const MODE_SETTERS: &[(i64, u32)] = &[
    (libc::SYS_chmod, 1),
    (libc::SYS_fchmod, 1),
    (libc::SYS_fchmodat, 2),
    (SYS_FCHMODAT2, 2),
    (libc::SYS_creat, 1),
    (libc::SYS_open, 2),
    (libc::SYS_openat, 3),
    (libc::SYS_mknod, 1),
    (libc::SYS_mknodat, 2),
];
const SET_ID_BITS: u32 = libc::S_ISUID | libc::S_ISGID;

/// Denied outright with EPERM: namespace, mount, tracing, kernel-attack
/// surface and keyring calls (S5, S8–S11).
const DENIED: &[i64] = &[
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_pidfd_getfd,
    libc::SYS_kcmp,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    SYS_OPEN_TREE_ATTR,
    libc::SYS_mount_setattr,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_name_to_handle_at,
    libc::SYS_open_by_handle_at,
    libc::SYS_acct,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_syslog,
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_quotactl,
    libc::SYS_vhangup,
];

/// Every CLONE_NEW* flag that fits clone(2)'s flags word (CLONE_NEWTIME
/// shares a bit with the exit signal there and is only usable via clone3).
const CLONE_NEW_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];

const DENIED_IOCTLS: &[u32] = &[libc::TIOCSTI as u32, libc::TIOCLINUX as u32];
const DENIED_SOCKET_FAMILIES: &[u32] = &[
    libc::AF_NETLINK as u32,
    libc::AF_PACKET as u32,
    libc::AF_VSOCK as u32,
];

// Offsets into struct seccomp_data; arguments are read by their low 32 bits,
// which is all the kernel looks at for these three calls.
const NR: u32 = 0;
const ARCH: u32 = 4;
const fn arg_lo(i: u32) -> u32 {
    16 + 8 * i
}

const LD: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JSET: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;

/// A tiny assembler with forward labels (classic BPF only jumps forward).
#[derive(Default)]
struct Asm {
    code: Vec<(u16, u32, Option<usize>, Option<usize>)>, // (op, k, jt label, jf label)
    labels: Vec<usize>,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(usize::MAX);
        self.labels.len() - 1
    }
    fn bind(&mut self, l: usize) {
        self.labels[l] = self.code.len();
    }
    fn stmt(&mut self, op: u16, k: u32) {
        self.code.push((op, k, None, None));
    }
    /// Conditional jump; `None` falls through.
    fn jump(&mut self, op: u16, k: u32, jt: Option<usize>, jf: Option<usize>) {
        self.code.push((op, k, jt, jf));
    }
    fn finish(self) -> io::Result<Vec<sock_filter>> {
        let off = |at: usize, l: Option<usize>| -> io::Result<u32> {
            let Some(l) = l else { return Ok(0) };
            let target = self.labels[l];
            target
                .checked_sub(at + 1)
                .map(|d| d as u32)
                .ok_or_else(|| io::Error::other("backward BPF jump"))
        };
        let mut out = Vec::with_capacity(self.code.len());
        for (at, (op, k, jt, jf)) in self.code.iter().enumerate() {
            let ins = if *op == JA {
                sock_filter {
                    code: *op,
                    jt: 0,
                    jf: 0,
                    k: off(at, *jt)?,
                }
            } else {
                let (t, f) = (off(at, *jt)?, off(at, *jf)?);
                if t > 255 || f > 255 {
                    return Err(io::Error::other("BPF jump too long"));
                }
                sock_filter {
                    code: *op,
                    jt: t as u8,
                    jf: f as u8,
                    k: *k,
                }
            };
            out.push(ins);
        }
        Ok(out)
    }
}

/// Binary search over sorted syscall numbers: a match jumps to `hit`, a miss
/// to `miss`. Keeps every path short, which matters because the kernel
/// replays the filter for each syscall number when it installs it (to build
/// its allow-cache): a linear 300-instruction list cost ~0.25 ms per launch.
fn search(a: &mut Asm, nrs: &[u32], hit: usize, miss: usize) {
    if nrs.len() <= 3 {
        for n in nrs {
            a.jump(JEQ, *n, Some(hit), None);
        }
        a.jump(JA, 0, Some(miss), None);
        return;
    }
    let mid = nrs.len() / 2;
    let upper = a.label();
    a.jump(JGE, nrs[mid], Some(upper), None);
    search(a, &nrs[..mid], hit, miss);
    a.bind(upper);
    search(a, &nrs[mid..], hit, miss);
}

/// Matches `arg` (low 32 bits) against `values`: equal -> EPERM, else allow.
fn deny_arg_values(a: &mut Asm, arg: u32, values: &[u32], deny: usize, allow: usize) {
    a.stmt(LD, arg_lo(arg));
    for v in values {
        a.jump(JEQ, *v, Some(deny), None);
    }
    a.jump(JA, 0, Some(allow), None);
}

/// The whole filter:
/// - wrong architecture, or an x32 syscall number (bit 30, same arch
///   value, invisible to a list keyed on x86_64 numbers): kill the process;
/// - clone3: ENOSYS (its flags live in memory the filter cannot read, and
///   libc then falls back to clone);
/// - the deny-list: EPERM;
/// - clone with any CLONE_NEW* flag, ioctl TIOCSTI/TIOCLINUX, socket of a
///   denied family, a file mode with the setuid or setgid bit: EPERM;
/// - openat2: ENOSYS (its mode lives in memory the filter cannot read; libc
///   and programs fall back to openat);
/// - everything else is allowed.
fn build() -> io::Result<Vec<sock_filter>> {
    let mut a = Asm::default();
    let (deny, allow, not_denied) = (a.label(), a.label(), a.label());
    let (not_clone, not_ioctl, not_socket) = (a.label(), a.label(), a.label());
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    a.stmt(LD, ARCH);
    let arch_ok = a.label();
    a.jump(JEQ, AUDIT_ARCH_X86_64, Some(arch_ok), None);
    a.stmt(RET, KILL);
    a.bind(arch_ok);
    a.stmt(LD, NR);
    let native = a.label();
    a.jump(JGE, 0x4000_0000, None, Some(native));
    a.stmt(RET, KILL);
    a.bind(native);
    let (enosys, not_enosys) = (a.label(), a.label());
    a.jump(JEQ, libc::SYS_clone3 as u32, Some(enosys), None);
    a.jump(
        JEQ,
        libc::SYS_openat2 as u32,
        Some(enosys),
        Some(not_enosys),
    );
    a.bind(enosys);
    a.stmt(RET, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32);
    a.bind(not_enosys);

    let mut nrs: Vec<u32> = DENIED.iter().map(|n| *n as u32).collect();
    nrs.sort_unstable();
    nrs.dedup();
    search(&mut a, &nrs, deny, not_denied);
    a.bind(not_denied);

    a.jump(JEQ, libc::SYS_clone as u32, None, Some(not_clone));
    a.stmt(LD, arg_lo(0));
    let new_flags = CLONE_NEW_FLAGS.iter().fold(0, |m, f| m | *f as u32);
    a.jump(JSET, new_flags, Some(deny), Some(allow));
    a.bind(not_clone);
    a.jump(JEQ, libc::SYS_ioctl as u32, None, Some(not_ioctl));
    deny_arg_values(&mut a, 1, DENIED_IOCTLS, deny, allow);
    a.bind(not_ioctl);
    a.jump(JEQ, libc::SYS_socket as u32, None, Some(not_socket));
    deny_arg_values(&mut a, 0, DENIED_SOCKET_FAMILIES, deny, allow);
    a.bind(not_socket);
    for (nr, mode_arg) in MODE_SETTERS {
        let next = a.label();
        a.jump(JEQ, *nr as u32, None, Some(next));
        a.stmt(LD, arg_lo(*mode_arg));
        a.jump(JSET, SET_ID_BITS, Some(deny), Some(allow));
        // A miss leaves the syscall number in the accumulator.
        a.bind(next);
    }
    a.bind(allow);
    a.stmt(RET, ALLOW);
    a.bind(deny);
    a.stmt(RET, EPERM);
    a.finish()
}

/// The compiled filter, shared by every launch.
pub fn program() -> io::Result<&'static [sock_filter]> {
    static PROG: OnceLock<BpfProgram> = OnceLock::new();
    if let Some(p) = PROG.get() {
        return Ok(p);
    }
    let prog = build()?;
    Ok(PROG.get_or_init(|| prog))
}

/// Child side: installs the filter (no_new_privs is already set by Landlock).
pub fn apply(prog: &[sock_filter]) -> Result<(), Errno> {
    seccompiler::apply_filter(prog).map_err(|_| {
        io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL)
    })
}
