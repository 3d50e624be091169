//! Subcommands other than `serve`: policy tools and the client.

pub mod audit;
pub mod call;
pub mod connect;
pub mod doctor;
pub mod mcp;
pub mod policy;
pub mod tools;
pub mod whoami;
