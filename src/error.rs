//! One error type for the whole runtime: the step that failed, the path it
//! touched, the errno the kernel gave and, where we know it, how to fix it.
//!
//! Rendered as a single line, e.g.
//! `mount /data: /var/lib/x: ENOENT: No such file or directory — create it first`.

use std::fmt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

#[derive(Debug, thiserror::Error)]
pub struct Error {
    step: String,
    path: Option<PathBuf>,
    errno: Option<Errno>,
    detail: Option<String>,
    hint: Option<String>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error that is not a failed syscall: a bad input or a broken rule.
    pub fn new(step: impl Into<String>) -> Self {
        Error {
            step: step.into(),
            path: None,
            errno: None,
            detail: None,
            hint: None,
        }
    }

    /// A failed syscall: `step` on `path` returned `errno`.
    pub fn sys(step: impl Into<String>, path: Option<&Path>, errno: Errno) -> Self {
        Error {
            path: path.map(Path::to_path_buf),
            errno: Some(errno),
            ..Error::new(step)
        }
    }

    pub fn at(mut self, path: impl AsRef<Path>) -> Self {
        self.path = Some(path.as_ref().to_path_buf());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Add a hint only when the kernel said `errno` (the fix depends on the cause).
    pub fn hint_if(self, errno: Errno, hint: impl Into<String>) -> Self {
        if self.errno == Some(errno) {
            self.hint(hint)
        } else {
            self
        }
    }

    /// Prefix the step with what the caller was doing, e.g. "create web1".
    pub fn within(mut self, outer: impl fmt::Display) -> Self {
        self.step = format!("{outer}: {}", self.step);
        self
    }

    pub fn errno(&self) -> Option<Errno> {
        self.errno
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.step)?;
        if let Some(path) = &self.path {
            write!(f, ": {}", path.display())?;
        }
        if let Some(errno) = self.errno {
            write!(f, ": {errno:?}: {}", errno.desc())?;
        }
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, " — {hint}")?;
        }
        Ok(())
    }
}

/// Attach a step (and optionally a path) to the low-level errors of nix and std.
pub trait Context<T> {
    fn step(self, step: &str) -> Result<T>;
    fn step_at(self, step: &str, path: &Path) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, Errno> {
    fn step(self, step: &str) -> Result<T> {
        self.map_err(|e| Error::sys(step, None, e))
    }
    fn step_at(self, step: &str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::sys(step, Some(path), e))
    }
}

fn from_io(step: &str, path: Option<&Path>, err: std::io::Error) -> Error {
    match err.raw_os_error() {
        Some(code) => Error::sys(step, path, Errno::from_raw(code)),
        None => {
            let e = Error::new(step).detail(err.to_string());
            match path {
                Some(p) => e.at(p),
                None => e,
            }
        }
    }
}

impl<T> Context<T> for std::io::Result<T> {
    fn step(self, step: &str) -> Result<T> {
        self.map_err(|e| from_io(step, None, e))
    }
    fn step_at(self, step: &str, path: &Path) -> Result<T> {
        self.map_err(|e| from_io(step, Some(path), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_line_with_every_part() {
        let e = Error::sys("mount", Some(Path::new("/data")), Errno::ENOENT)
            .hint("create it first")
            .within("create web1");
        assert_eq!(
            e.to_string(),
            "create web1: mount: /data: ENOENT: No such file or directory — create it first"
        );
    }

    #[test]
    fn hint_if_only_matches_its_errno() {
        let e = Error::sys("open", None, Errno::EPERM).hint_if(Errno::ENOENT, "x");
        assert!(!e.to_string().contains('—'));
    }
}
