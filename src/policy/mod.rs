//! Policy files: the TOML model, loading with `file:line:col` errors,
//! compilation into matchers, and the decisions made from them.

pub mod cases;
pub mod compile;
pub mod decide;
pub mod explain;
pub mod lint;
pub mod load;
pub mod model;
pub mod ratelimit;
pub mod remote;
pub mod roles;
pub mod schema;
pub mod sessions;
pub mod shell;

pub use compile::{AgentPolicy, CompiledPolicy, Limits, WorkspacePolicy, WorkspaceRules};
pub use decide::{Access, Decision, FileRules};
pub use load::{LoadError, LoadOptions, PolicyDiagnostic, load_dir, load_embedded_default};
pub use shell::{AllowedCommand, Requirements, ShellLimits, ShellPolicy};
