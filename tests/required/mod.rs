//! Tools a test needs from the host. Outside CI a missing one is reported
//! and the test returns; under CI=true (root, every mechanism installed by
//! .ci/run) it fails the test: nothing passes by skipping there.

use std::path::PathBuf;

/// Whether we run under CI (`CI=true` or `CI=1`): nothing may be skipped
/// there. The one test-side definition (`shell_common::under_ci` calls it).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// `Some(path)` of `name` from PATH (or /usr/bin, /usr/sbin, /bin); `None`
/// with a note outside CI, a panic naming `package` under CI.
pub fn tool(name: &str, package: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/sbin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            !in_ci(),
            "{name} is missing: CI must run this test; .ci/run must install {package}"
        );
        eprintln!("note: {name} not found (package {package}); skipping this check");
    }
    found
}
