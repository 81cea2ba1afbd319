//! A progress line for long loads and pulls, on stderr when it is a
//! terminal (nothing otherwise): `<what>: 12.3 MB / 45.6 MB`, redrawn at
//! most ten times a second, cleared when the reader is dropped.

use std::io::{IsTerminal, Read, Write};
use std::time::{Duration, Instant};

pub struct Progress<R> {
    inner: R,
    what: String,
    total: Option<u64>,
    done: u64,
    last: Option<Instant>,
    shown: bool,
}

impl<R: Read> Progress<R> {
    /// `inner` counted as it is read; drawn only if stderr is a terminal.
    pub fn new(inner: R, what: &str, total: Option<u64>) -> Progress<R> {
        Progress {
            inner,
            what: what.to_string(),
            total,
            done: 0,
            last: std::io::stderr().is_terminal().then(Instant::now),
            shown: false,
        }
    }

    fn draw(&mut self) {
        let Some(last) = self.last else { return };
        if self.shown && last.elapsed() < Duration::from_millis(100) {
            return;
        }
        self.last = Some(Instant::now());
        self.shown = true;
        let _ = write!(
            std::io::stderr(),
            "\r\x1b[K{}",
            line(&self.what, self.done, self.total)
        );
    }
}

/// `what: 1.2 MB / 3.4 MB` (or without the total when it is unknown).
pub fn line(what: &str, done: u64, total: Option<u64>) -> String {
    let mb = |b: u64| format!("{:.1} MB", b as f64 / 1e6);
    match total {
        Some(t) => format!("{what}: {} / {}", mb(done), mb(t)),
        None => format!("{what}: {}", mb(done)),
    }
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        self.draw();
        Ok(n)
    }
}

impl<R> Drop for Progress<R> {
    fn drop(&mut self) {
        if self.shown {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(
            line("layer", 1_250_000, Some(3_400_000)),
            "layer: 1.2 MB / 3.4 MB"
        );
        assert_eq!(line("archive", 0, None), "archive: 0.0 MB");
        let mut p = Progress::new(&b"abc"[..], "x", None);
        let mut s = String::new();
        p.read_to_string(&mut s).unwrap();
        assert_eq!((s.as_str(), p.done), ("abc", 3));
    }
}
