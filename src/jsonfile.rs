//! The small JSON files of a state dir (journals, the monitor's records):
//! read whole, None when absent; written whole, temp + rename, so a reader
//! sees the old file or the new one, never half of one.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Context, Error, Result};

/// `<dir>/<name>`, or None if there is no such file. `what` names it in errors.
pub fn read<T: DeserializeOwned>(dir: &Path, name: &str, what: &str) -> Result<Option<T>> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(text) => serde_json::from_slice(&text).map(Some).map_err(|e| {
            Error::new(format!("parse {what}"))
                .at(&path)
                .detail(e.to_string())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).step_at(&format!("read {what}"), &path),
    }
}

/// Replace `<dir>/<name>` with `value`.
pub fn write<T: Serialize>(dir: &Path, name: &str, what: &str, value: &T) -> Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let json = serde_json::to_vec(value).expect("state files serialise");
    let step = format!("write {what}");
    std::fs::write(&tmp, json).step_at(&step, &tmp)?;
    std::fs::rename(&tmp, &path).step_at(&step, &path)
}
