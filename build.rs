//! Compiles the API with protox (pure Rust, no system `protoc`) and writes the
//! descriptor set that the reflection service serves.
use prost::Message;
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/agentjail/v1/agentjail.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(out.join("agentjail_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // prost's codec, but undecodable requests are INVALID_ARGUMENT.
        .codec_path("crate::server::codec::CheckedCodec")
        // A binary read's bytes as `Bytes`: the file's buffer is handed to
        // the response, and a client decodes it without a copy.
        .bytes(".agentjail.v1.ReadFileResponse.data")
        .compile_fds(fds)?;
    Ok(())
}
