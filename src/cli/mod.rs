//! Subcommands other than `serve`: policy tools and the client.

pub mod call;
pub mod doctor;
pub mod policy;
