//! `audit verify` on an arbitrary log file: a verdict (ok, or a break
//! with its line), never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(data).expect("write");
    let _ = agentjail::audit::verify::verify(&[file.path().to_path_buf()]);
});
