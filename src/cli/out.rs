//! What commands print on stdout. A reader that goes away (`hull state ID |
//! head -1`) ends hull the way it ends every Unix tool: quietly, by SIGPIPE,
//! never with a panic or an error message. hull ignores SIGPIPE otherwise
//! (Rust's default), because a hook that does not read its stdin must not
//! kill the runtime that feeds it.

use std::io::Write;

use nix::sys::signal::{raise, Signal};

use crate::error::{Context, Result};

/// Write `text` to stdout and flush it.
pub fn print(text: &str) -> Result<()> {
    print_bytes(text.as_bytes())
}

/// `print` for bytes that may not be text (a container's output).
pub fn print_bytes(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => reader_gone(),
        other => other.step("write to stdout"),
    }
}

/// `print` with a newline.
pub fn line(text: &str) -> Result<()> {
    print(&format!("{text}\n"))
}

/// The panic of `println!` on a closed stdout, which `main` routes to
/// `reader_gone` (every `println!` of every command is covered this way).
pub fn is_closed_stdout_panic(info: &std::panic::PanicHookInfo<'_>) -> bool {
    let msg = info
        .payload()
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| info.payload().downcast_ref::<&str>().copied())
        .unwrap_or("");
    msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe")
}

/// End as a tool whose reader went away ends: killed by SIGPIPE.
pub fn reader_gone() -> ! {
    let _ = crate::sys::default_signal(Signal::SIGPIPE);
    let _ = raise(Signal::SIGPIPE);
    // SIGPIPE blocked by our caller: the status a shell reports for it.
    std::process::exit(128 + libc::SIGPIPE)
}
