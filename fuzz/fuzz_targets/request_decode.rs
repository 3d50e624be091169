//! Decoding every request message from arbitrary bytes, as the daemon's
//! codec does, then the checks the daemon runs before any work (limits):
//! an error or a message, never a panic.
#![no_main]
use agentjail::proto::*;
use agentjail::server::fuzzing::check_request;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    macro_rules! try_decode {
        ($($t:ty),*) => {{
            let decoders: &[fn(&[u8])] = &[$(|b| {
                if let Ok(m) = <$t>::decode(b) {
                    let _ = check_request(&m);
                }
            }),*];
            decoders[which as usize % decoders.len()](bytes);
        }};
    }
    try_decode!(
        ReadFileRequest,
        WriteFileRequest,
        EditFileRequest,
        ListDirRequest,
        GlobRequest,
        GrepRequest,
        StatRequest,
        MakeDirRequest,
        MoveRequest,
        RemoveRequest,
        ExecRequest
    );
    let _ = WhoAmIRequest::decode(bytes);
});
