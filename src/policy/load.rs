//! Loading a policy directory: every error with `file:line:col`.
use super::compile::CompiledPolicy;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct PolicyDiagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

#[derive(Debug)]
pub struct LoadError {
    pub diagnostics: Vec<PolicyDiagnostic>,
}

pub fn load_dir(_dir: &Path, _state_dir: &Path) -> Result<CompiledPolicy, LoadError> {
    todo!()
}

pub fn load_embedded_default(_state_dir: &Path) -> Result<CompiledPolicy, LoadError> {
    todo!()
}
