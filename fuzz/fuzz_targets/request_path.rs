//! Request path validation and normalisation: a clean relative path with
//! no `..`, `.` or empty component, or a refusal; never a panic. The
//! workspace's host root is fixed, so `/workspace/…` and host-path forms
//! are mapped as in the daemon.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

const ROOT: &str = "/srv/agentjail/ws";

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(clean) = agentjail::fs::normalise_request_path(raw, Path::new(ROOT)) {
        assert!(!clean.starts_with('/'), "{clean:?}");
        for comp in clean.split('/').filter(|c| !c.is_empty()) {
            assert!(comp != ".." && comp != ".", "{raw:?} -> {clean:?}");
        }
        // Normalising twice changes nothing.
        assert_eq!(
            agentjail::fs::normalise_request_path(&clean, Path::new(ROOT)).ok().as_deref(),
            Some(clean.as_str())
        );
    }
});
