//! agentjail: a host daemon that runs AI agents' file and shell tool calls
//! under a security team's policy.

pub mod audit;
pub mod cancel;
pub mod cli;
pub mod client;
pub mod config;
pub mod error;
pub mod fs;
pub mod limits;
pub mod logging;
pub mod mcp;
pub mod metrics;
pub mod policy;
pub mod privileges;
pub mod sandbox;
pub mod server;
pub mod session;
pub mod shell;

pub mod proto {
    //! Generated gRPC types for `agentjail.v1`.
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("agentjail.v1");

    /// Encoded descriptor set, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("agentjail_descriptor");

    /// Every method of the service as the proto declares it, read once from
    /// the embedded descriptor (so no list of them is kept by hand).
    pub fn method_names() -> &'static [String] {
        static METHODS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
            use prost::Message;
            let set = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET)
                .expect("the embedded descriptor set decodes");
            set.file
                .iter()
                .flat_map(|f| f.service.iter())
                .flat_map(|s| s.method.iter())
                .filter_map(|m| m.name.clone())
                .collect()
        });
        &METHODS
    }
}
