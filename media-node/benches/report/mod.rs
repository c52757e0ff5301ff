//! Where benchmark figures go: `target/bench/<name>` (or `$CARGO_TARGET_DIR/bench`).

use std::path::{Path, PathBuf};

/// Writes `value` as pretty JSON to the bench directory, so runs leave a file to compare.
pub fn write_json(name: &str, value: &serde_json::Value) -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| Path::new(&t).join("bench"))
        .unwrap_or_else(|| workspace.join("target/bench"));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(value).expect("json")).expect("write");
    eprintln!("wrote {}", path.display());
    path
}
