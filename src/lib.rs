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
}
