//! The policy parser and compiler on arbitrary text: an error or a
//! policy, never a panic.
#![no_main]
use agentjail::policy::load::{LoadOptions, compile_sources};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let opts = LoadOptions {
        state_dir: std::env::temp_dir(),
        open_workspaces: false,
    };
    let _ = compile_sources(&[("fuzz.toml".into(), text.to_string())], &opts);
});
