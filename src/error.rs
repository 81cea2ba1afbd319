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
        // Steps, paths and details echo values from config.json and the
        // command line: each part is made safe for a one-line log here, so no
        // caller can forget it.
        f.write_str(&one_line(&self.step))?;
        if let Some(path) = &self.path {
            write!(f, ": {}", one_line(&path.to_string_lossy()))?;
        }
        if let Some(errno) = self.errno {
            write!(f, ": {errno:?}: {}", errno.desc())?;
        }
        if let Some(detail) = &self.detail {
            write!(f, ": {}", one_line(detail))?;
        }
        if let Some(hint) = &self.hint {
            write!(f, " — {}", one_line(hint))?;
        }
        Ok(())
    }
}

/// The longest run of non-blank characters an error echoes whole: a value
/// longer than this is a mistake or an attack, and its start identifies it.
pub const ECHO_LIMIT: usize = 200;
/// The most any one part of an error line may take, however many values it holds.
const PART_LIMIT: usize = 4 * ECHO_LIMIT;

/// `text` made fit for one log line: control characters escaped (a newline
/// in a value must not start a second line), each word longer than
/// ECHO_LIMIT cut with "…", and the whole part cut at PART_LIMIT.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(PART_LIMIT + 8));
    let mut word = 0usize;
    let mut total = 0usize;
    for c in text.chars() {
        if total >= PART_LIMIT {
            out.push('…');
            break;
        }
        if c == ' ' {
            word = 0;
        } else {
            word += 1;
        }
        if word > ECHO_LIMIT {
            if word == ECHO_LIMIT + 1 {
                out.push('…');
            }
            continue;
        }
        total += 1;
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
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
    fn control_characters_cannot_split_the_line() {
        let e =
            Error::new("check config").detail("bad name \"a\\nb\u{1b}[31m\"".replace("\\n", "\n"));
        let line = e.to_string();
        assert!(!line.contains('\n') && !line.contains('\u{1b}'), "{line:?}");
        assert!(line.contains("a\\nb"), "{line:?}");
    }

    #[test]
    fn a_huge_value_is_cut() {
        let value = "CAP_".to_string() + &"A".repeat(200_000);
        let line = Error::new("parse config")
            .detail(format!("no variant for {value} and {value}"))
            .to_string();
        assert!(line.len() < 1000, "{} bytes", line.len());
        assert!(line.contains("CAP_AAA") && line.contains('…'), "{line}");
        assert!(one_line("short words stay").eq("short words stay"));
    }

    #[test]
    fn hint_if_only_matches_its_errno() {
        let e = Error::sys("open", None, Errno::EPERM).hint_if(Errno::ENOENT, "x");
        assert!(!e.to_string().contains('—'));
    }
}
