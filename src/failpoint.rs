//! Fault injection for the crash-safety tests: built only with the cargo
//! feature `failpoints` (`make build-failpoints`, into target/failpoints;
//! never the release binary). `HULL_FAILPOINT="<step>"` makes hull SIGKILL
//! itself at the step of that exact name, as `--debug` prints it: the crash
//! `delete --force` and `gc` must recover from. Without the feature every
//! function here is empty and the compiler removes the calls.
//!
//! Steps of the container init and of an exec'd process run in a child of
//! hull, often in a new pid namespace where hull's pid means nothing. Such a
//! child writes one byte to a pipe whose read end is set to signal hull with
//! SIGKILL on input (sys::signal_on_input); the child then dies with hull
//! (its parent-death signal). No thread: hull forks with a raw clone3, and a
//! thread holding a libc lock at that moment would deadlock the child.

#[cfg(feature = "failpoints")]
mod armed {
    use std::os::fd::{AsFd, OwnedFd};
    use std::sync::OnceLock;

    use nix::sys::signal::{raise, Signal};
    use nix::unistd::{getpid, getppid, pause, pipe2, write, Pid};

    pub const ENV: &str = "HULL_FAILPOINT";

    struct Armed {
        step: String,
        /// hull's own pid and parent: a child of hull, in a pid namespace or
        /// not, never has both.
        hull: (Pid, Pid),
        /// The read end, kept open for the kernel to signal through.
        _rx: OwnedFd,
        tx: OwnedFd,
    }

    static ARMED: OnceLock<Armed> = OnceLock::new();

    pub fn arm() {
        let Some(step) = std::env::var(ENV).ok().filter(|s| !s.is_empty()) else {
            return;
        };
        let Ok((rx, tx)) = pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
            return;
        };
        if crate::sys::signal_on_input(rx.as_fd(), getpid(), libc::SIGKILL).is_err() {
            return;
        }
        let _ = ARMED.set(Armed {
            step,
            hull: (getpid(), getppid()),
            _rx: rx,
            tx,
        });
    }

    pub fn hit(step: &str) {
        let Some(a) = ARMED.get() else { return };
        if a.step != step {
            return;
        }
        eprintln!("hull: failpoint: SIGKILL at {step:?}");
        if (getpid(), getppid()) == a.hull {
            let _ = raise(Signal::SIGKILL);
        } else {
            let _ = write(&a.tx, b"k");
        }
        // Until the signal (ours, or hull's death through our parent-death
        // signal) ends us.
        loop {
            pause();
        }
    }
}

/// Read `HULL_FAILPOINT` once, at start-up (called by `Logger::new`).
#[cfg(feature = "failpoints")]
pub use armed::arm;
/// SIGKILL hull if `step` is the armed failpoint (called by `Logger::step`).
#[cfg(feature = "failpoints")]
pub use armed::hit;

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn arm() {}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_step: &str) {}
