//! The monitor's loop: output to the log and to attached clients, input
//! from them, the lease, and the end of each run — recorded, the runtime
//! released, then restarted, removed or left stopped.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::SigSet;
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::attach::{Decoder, Frame};
use super::info::{Info, ATTACH_SOCKET, STOP_REQUESTED};
use super::logfile::{Stream, Writer};
use super::policy;
use super::{create_and_start, write_all, Launch, Pipes};
use crate::error::{Context, Error, Result};
use crate::log::Logger;
use crate::state::{Entry, Store};

/// One run of the container: its init and our ends of its stdio.
pub(super) struct Running {
    pub dir: PathBuf,
    pub init: Pid,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    /// Our end of the container's stdin (`-i`), or its pty master.
    stdin: Option<OwnedFd>,
    pty: bool,
    since: Instant,
    /// The init's exit code, when it was reaped before the loop began.
    exited: Option<i32>,
}

impl Running {
    pub fn start(store: &Store, launch: &Launch, again: bool, log: &Logger) -> Result<Running> {
        let pipes = Pipes::new(launch.interactive)?;
        let created = create_and_start(store, launch, again, &pipes, log)?;
        let dir = created.container.dir.clone();
        let Pipes {
            theirs,
            stdin,
            stdout,
            stderr,
        } = pipes;
        drop(theirs);
        let (stdout, stdin, pty) = match created.pty {
            // A terminal: one stream, both ways, through the master.
            Some(master) => {
                let copy = master.try_clone().step("dup pty master")?;
                (copy, Some(master), true)
            }
            None => (stdout, stdin, false),
        };
        for fd in [Some(&stdout), (!pty).then_some(&stderr)]
            .into_iter()
            .flatten()
        {
            let _ = fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
        }
        let me = std::process::id() as i32;
        let mut info = Info::read(&dir)?.unwrap_or_default();
        info.pid = me;
        info.pid_start = crate::state::proc_start_time(me).map_or(0, |(s, _)| s);
        info.started = Some(crate::time::rfc3339_now());
        info.exit_code = None;
        info.finished = None;
        info.oom_killed = false;
        info.restarting = false;
        info.write(&dir)?;
        Ok(Running {
            dir,
            init: created.pid,
            stdout: Some(stdout),
            stderr: (!pty).then_some(stderr),
            stdin,
            pty,
            since: Instant::now(),
            exited: None,
        })
    }
}

struct Client {
    sock: UnixStream,
    decoder: Decoder,
}

struct Monitor<'a> {
    store: &'a Store,
    launch: Launch,
    log: &'a Logger,
    id: String,
    dir: PathBuf,
    sfd: SignalFd,
    logs: Option<Writer>,
    listener: Option<UnixListener>,
    clients: Vec<Client>,
    lease: Option<OwnedFd>,
    lease_ended: bool,
    /// Resident pages let go since the last event.
    trimmed: bool,
}

/// Serve until the container is done for good; never fails (there is no
/// one left to tell), problems go to --log.
pub(super) fn serve(
    store: &Store,
    launch: Launch,
    running: Running,
    signals: SigSet,
    attempt: u32,
    log: &Logger,
) {
    let Ok(sfd) = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
    else {
        return;
    };
    // New files in the state dir only under its lock: a `delete` that
    // holds it must not find the dir refilled as it removes it.
    // Not a blocking wait: a `delete -f` holding the lock waits for the
    // killed init to leave its cgroups, which takes our reaping it.
    let mut running = running;
    let guard = loop {
        match store.try_entry(&launch.create.id) {
            Ok(Entry::Container(c)) => break c,
            Ok(Entry::Busy) => {
                if running.exited.is_none() {
                    running.exited = reap(running.init);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            // Deleted meanwhile.
            _ => return,
        }
    };
    let logs = Writer::open(&running.dir, launch.log)
        .map_err(|e| log.warning(&e.to_string()))
        .ok();
    let listener = listen(&running.dir);
    drop(guard);
    let lease = launch
        .lease
        .map(|l| crate::signal::pidfd_if_ours(l.pid, l.start));
    let m = Monitor {
        store,
        log,
        id: launch.create.id.clone(),
        dir: running.dir.clone(),
        sfd,
        logs,
        listener,
        clients: Vec::new(),
        lease_ended: matches!(lease, Some(Err(_))),
        lease: lease.and_then(|l| l.ok()),
        trimmed: false,
        launch,
    };
    if m.lease_ended {
        m.end_lease(running.init);
    }
    let mut m = m;
    let mut run = running;
    let mut attempt = attempt;
    loop {
        let code = m.pump_until_exit(&mut run);
        let Some(again) = m.after_exit(code, &run, &mut attempt) else {
            break;
        };
        match Running::start(m.store, &m.launch, again, m.log) {
            Ok(next) => {
                // A fresh image again: the create path's pages go.
                let _ = reexec(m.store, &next, attempt, m.log);
                run = next
            }
            Err(e) => {
                m.log.warning(&e.to_string());
                m.record_locked(|i| i.restarting = false);
                break;
            }
        }
    }
    let _ = std::fs::remove_file(m.dir.join(ATTACH_SOCKET));
}

/// Quiet this long after an event, the monitor trims its resident pages.
const TRIM_AFTER_MS: u16 = 250;

/// argv[0] of a re-executed monitor (`exec_entry` in main).
pub const EXEC_NAME: &str = "hull-monitor";

/// Become a fresh hull image serving `run`: a monitor that has just run
/// a create holds every page the create touched (~4 MiB resident); a new
/// image has only what the loop uses. Returns only on failure (then the
/// caller decides whether it can serve as it is). The fds of `run` survive
/// exec, as do the blocked signals and the ignored SIGPIPE; the container
/// stays our child.
/// The nice value a monitor starts its new image with.
const STARTUP_NICE: i32 = 10;

pub(super) fn reexec(store: &Store, run: &Running, attempt: u32, log: &Logger) -> Error {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let fd_arg = |fd: Option<&OwnedFd>| -> String {
        fd.map_or(-1, |fd| {
            let _ = fcntl(
                fd.as_raw_fd(),
                FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
            );
            fd.as_raw_fd()
        })
        .to_string()
    };
    let (log_path, json) = log
        .file()
        .map_or((Default::default(), false), |(p, j)| (p.to_path_buf(), j));
    // The new image's start-up (loading, faulting in its pages: about
    // 1.5 ms of CPU) runs behind whatever the user waits for, such as the
    // shell that `run -d` returns to; `resume` takes the priority back.
    let nice = crate::sys::nice_of(0);
    let _ = crate::sys::set_nice_of(0, nice.max(STARTUP_NICE));
    let words: Vec<Vec<u8>> = vec![
        EXEC_NAME.into(),
        store.root().as_os_str().as_bytes().to_vec(),
        crate::storage::data_root().as_os_str().as_bytes().to_vec(),
        run.dir.file_name().unwrap_or_default().as_bytes().to_vec(),
        run.init.as_raw().to_string().into(),
        fd_arg(run.stdout.as_ref()).into(),
        fd_arg(run.stderr.as_ref()).into(),
        fd_arg(run.stdin.as_ref()).into(),
        u8::from(run.pty).to_string().into(),
        run.since.elapsed().as_millis().to_string().into(),
        attempt.to_string().into(),
        log_path.as_os_str().as_bytes().to_vec(),
        u8::from(json).to_string().into(),
        nice.to_string().into(),
    ];
    let Ok(argv) = words
        .into_iter()
        .map(CString::new)
        .collect::<std::result::Result<Vec<_>, _>>()
    else {
        return Error::new("re-execute monitor").detail("a path holds a NUL byte");
    };
    match nix::unistd::execv(c"/proc/self/exe", &argv) {
        Err(e) => {
            let _ = crate::sys::set_nice_of(0, nice);
            Error::sys("re-execute monitor", None, e)
        }
        Ok(never) => match never {},
    }
}

/// The re-executed monitor: rebuild what `reexec` passed, and serve.
pub(super) fn resume(args: &[std::ffi::OsString]) -> Option<()> {
    use std::os::unix::ffi::OsStrExt;
    let [root, data_root, id, init, stdout, stderr, stdin, pty, since_ms, attempt, log_path, json, nice] =
        args
    else {
        return None;
    };
    let num = |s: &std::ffi::OsString| -> Option<i64> {
        std::str::from_utf8(s.as_bytes()).ok()?.parse().ok()
    };
    let fd = |s: &std::ffi::OsString| -> Option<Option<OwnedFd>> {
        let n = num(s)?;
        Some((n >= 0).then(|| crate::sys::own_fd(n as i32)))
    };
    let log_path = (!log_path.is_empty()).then(|| PathBuf::from(log_path));
    let log = Logger::new(log_path.as_deref(), num(json)? == 1, false).ok()?;
    crate::storage::set_data_root(std::path::Path::new(data_root));
    let store = Store::new(std::path::Path::new(root));
    let dir = store.root().join(id);
    let launch = super::Launch::read(&dir).ok()??;
    let since = Instant::now()
        .checked_sub(Duration::from_millis(num(since_ms)?.max(0) as u64))
        .unwrap_or_else(Instant::now);
    let run = Running {
        dir,
        init: Pid::from_raw(num(init)? as i32),
        stdout: fd(stdout)?,
        stderr: fd(stderr)?,
        stdin: fd(stdin)?,
        pty: num(pty)? == 1,
        since,
        exited: None,
    };
    // Back to close-on-exec: no container process may inherit them.
    for f in [&run.stdout, &run.stderr, &run.stdin].into_iter().flatten() {
        let _ = fcntl(
            f.as_raw_fd(),
            FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
    }
    let _ = crate::sys::set_nice_of(0, num(nice)? as i32);
    serve(
        &store,
        launch,
        run,
        super::monitor_signals(),
        num(attempt)? as u32,
        &log,
    );
    Some(())
}

/// A monitor waits most of its life: the code and read-only data that
/// start-up or a burst of output touched (of hull, libc, the loader) need
/// not stay resident while it waits.
/// Only mappings of files that are not writable and hold no dirty page
/// are let go; what the loop uses faults back from the page cache.
fn trim_resident_pages() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    for (lo, hi) in clean_file_mappings(&smaps) {
        let _ = crate::sys::forget_clean_file_pages(lo, hi - lo);
    }
}

/// The address ranges of /proc/self/smaps entries that map a file, are not
/// writable, and hold no dirty page and no anonymous (copied) page.
fn clean_file_mappings(smaps: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    // The entry being read, and how many of its two counts were zero.
    let mut current: Option<((usize, usize), u8)> = None;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if first.ends_with(':') {
            if let Some((range, zeros)) = &mut current {
                if matches!(first, "Private_Dirty:" | "Anonymous:") && words.next() == Some("0") {
                    *zeros += 1;
                    if *zeros == 2 {
                        out.push(*range);
                    }
                }
            }
            continue;
        }
        // A mapping's first line: range, perms, offset, device, inode, path.
        let perms = words.next().unwrap_or("");
        let path = words.nth(3).unwrap_or("");
        current = first
            .split_once('-')
            .and_then(|(lo, hi)| {
                Some((
                    usize::from_str_radix(lo, 16).ok()?,
                    usize::from_str_radix(hi, 16).ok()?,
                ))
            })
            .filter(|_| path.starts_with('/') && !perms.contains('w'))
            .map(|range| (range, 0));
    }
    out
}

/// The attach socket, bound through /proc/self/fd so that a long state
/// dir path does not hit the 108-byte limit of socket addresses.
fn listen(dir: &std::path::Path) -> Option<UnixListener> {
    let d = std::fs::File::open(dir).ok()?;
    let path = format!("/proc/self/fd/{}/{ATTACH_SOCKET}", d.as_raw_fd());
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path).ok()?;
    l.set_nonblocking(true).ok()?;
    Some(l)
}

impl Monitor<'_> {
    /// Move output and input until the init exits; its exit code.
    fn pump_until_exit(&mut self, run: &mut Running) -> i32 {
        loop {
            if let Some(code) = run.exited.take().or_else(|| reap(run.init)) {
                self.drain(run);
                return code;
            }
            let lease_fd = self.lease.as_ref().map(|f| f.as_fd());
            let out_fds: Vec<_> = [run.stdout.as_ref(), run.stderr.as_ref()]
                .into_iter()
                .map(|f| f.map(|f| f.as_fd()))
                .collect();
            let mut fds = vec![PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN)];
            let mut what = vec![Event::Signal];
            for (i, fd) in out_fds.iter().enumerate() {
                if let Some(fd) = fd {
                    fds.push(PollFd::new(*fd, PollFlags::POLLIN));
                    what.push(Event::Output(i));
                }
            }
            if let Some(l) = &self.listener {
                fds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
                what.push(Event::Accept);
            }
            for (i, c) in self.clients.iter().enumerate() {
                fds.push(PollFd::new(c.sock.as_fd(), PollFlags::POLLIN));
                what.push(Event::Client(i));
            }
            if let Some(fd) = lease_fd {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
                what.push(Event::Lease);
            }
            // After a burst of work, once quiet for a moment, let go of the
            // pages the work touched, then wait for as long as it takes.
            let timeout = if self.trimmed {
                PollTimeout::NONE
            } else {
                PollTimeout::from(TRIM_AFTER_MS)
            };
            match poll(&mut fds, timeout) {
                Ok(0) => {
                    trim_resident_pages();
                    self.trimmed = true;
                    continue;
                }
                Ok(_) => self.trimmed = false,
                Err(_) => continue,
            }
            let ready: Vec<Event> = fds
                .iter()
                .zip(what)
                .filter(|(f, _)| f.revents().is_some_and(|r| !r.is_empty()))
                .map(|(_, e)| e)
                .collect();
            drop(fds);
            let mut gone = Vec::new();
            for event in ready {
                match event {
                    Event::Signal => while let Ok(Some(_)) = self.sfd.read_signal() {},
                    Event::Output(i) => {
                        self.output(run, i);
                    }
                    Event::Accept => self.accept(),
                    Event::Client(i) => {
                        if !self.client_input(run, i) {
                            gone.push(i);
                        }
                    }
                    Event::Lease => {
                        self.lease = None;
                        self.lease_ended = true;
                        self.end_lease(run.init);
                    }
                }
            }
            for i in gone.into_iter().rev() {
                self.clients.remove(i);
            }
        }
    }

    /// Read what stream `i` (0 stdout, 1 stderr) has; log it and send it
    /// on. False when there was nothing (or no more) to read.
    fn output(&mut self, run: &mut Running, i: usize) -> bool {
        let slot = if i == 0 {
            &mut run.stdout
        } else {
            &mut run.stderr
        };
        let Some(fd) = slot.as_ref() else {
            return false;
        };
        let mut buf = [0u8; 16384];
        match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
            Ok(0) => *slot = None,
            Ok(n) => {
                let (stream, frame) = if i == 0 {
                    (Stream::Stdout, Frame::Stdout(buf[..n].to_vec()))
                } else {
                    (Stream::Stderr, Frame::Stderr(buf[..n].to_vec()))
                };
                if let Some(logs) = &mut self.logs {
                    logs.write(stream, &buf[..n]);
                }
                self.broadcast(&frame);
                return true;
            }
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
            // EIO: the pty's last slave is closed.
            Err(_) => *slot = None,
        }
        false
    }

    /// The init is gone: what its stdio holds is taken now, not waited
    /// for (an orphan may keep a pipe open). Our ends are non-blocking.
    fn drain(&mut self, run: &mut Running) {
        for i in 0..2 {
            for _ in 0..256 {
                if !self.output(run, i) {
                    break;
                }
            }
        }
        if let Some(logs) = &mut self.logs {
            logs.flush();
        }
    }

    fn broadcast(&mut self, frame: &Frame) {
        let bytes = frame.encode();
        // A client that cannot keep up is dropped, never waited for.
        self.clients.retain(|c| write_all(&c.sock, &bytes));
    }

    fn accept(&mut self) {
        let Some(l) = &self.listener else { return };
        while let Ok((sock, _)) = l.accept() {
            if sock.set_nonblocking(true).is_ok() {
                self.clients.push(Client {
                    sock,
                    decoder: Decoder::default(),
                });
            }
        }
    }

    /// Input from client `i`; false when it is gone.
    fn client_input(&mut self, run: &mut Running, i: usize) -> bool {
        let c = &mut self.clients[i];
        let mut buf = [0u8; 8192];
        let n = match nix::unistd::read(c.sock.as_raw_fd(), &mut buf) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return true,
            Err(_) => return false,
        };
        let Some(frames) = c.decoder.push(&buf[..n]) else {
            return false;
        };
        for frame in frames {
            match frame {
                Frame::Stdin(bytes) => {
                    if let Some(fd) = &run.stdin {
                        if !write_all(fd, &bytes) && !run.pty {
                            run.stdin = None;
                        }
                    }
                }
                Frame::Resize { rows, cols } if run.pty => {
                    if let Some(master) = &run.stdin {
                        let _ = crate::sys::set_window_size(master.as_fd(), rows, cols);
                    }
                }
                // The end of a pipe's input; a terminal has none.
                Frame::CloseStdin if !run.pty => run.stdin = None,
                _ => {}
            }
        }
        true
    }

    /// The lease holder is gone: the container ends now and is removed
    /// once its init is reaped.
    fn end_lease(&self, init: Pid) {
        let _ = std::fs::write(self.dir.join(STOP_REQUESTED), "lease");
        match self.store.peek(&self.id) {
            Ok(c) if !c.record.cgroups.is_empty() => {
                let _ = crate::cgroups::signal_all(&c.record.cgroups, libc::SIGKILL);
            }
            _ => {
                let _ = nix::sys::signal::kill(init, nix::sys::signal::Signal::SIGKILL);
            }
        }
    }

    /// `record` under the container's lock; nothing if it is gone.
    fn record_locked(&self, change: impl FnOnce(&mut Info)) {
        if let Ok(_locked) = self.store.load(&self.id) {
            self.record(change);
        }
    }

    /// Caller holds the container's lock.
    fn record(&self, change: impl FnOnce(&mut Info)) {
        let mut info = Info::read(&self.dir).ok().flatten().unwrap_or_default();
        change(&mut info);
        if let Err(e) = info.write(&self.dir) {
            self.log.warning(&e.to_string());
        }
    }

    /// The run ended with `code`: record it, release what it held, and
    /// say whether (Some(again)) the container runs again.
    fn after_exit(&mut self, code: i32, run: &Running, attempt: &mut u32) -> Option<bool> {
        for c in std::mem::take(&mut self.clients) {
            let _ = write_all(&c.sock, &Frame::Exit(code).encode());
        }
        // Deleted under us (`delete -f`): nothing left to record.
        let container = self.store.load(&self.id).ok()?;
        let oom = crate::cgroups::oom_kills(&container.record.cgroups) > 0;
        let restarts = Info::read(&self.dir)
            .ok()
            .flatten()
            .unwrap_or_default()
            .restart_count;
        let stopped = self.lease_ended || self.dir.join(STOP_REQUESTED).exists();
        let again = self.launch.restart.should_restart(code, restarts, stopped);
        // One write: a reader never sees "exited" between two runs.
        self.record(|i| {
            i.exit_code = Some(code);
            i.finished = Some(crate::time::rfc3339_now());
            i.oom_killed = oom;
            i.restarting = again;
        });
        // Published ports and cgroups go when the container stops.
        if let Err(e) = crate::create::release(&container, self.log) {
            self.log.warning(&e.to_string());
        }
        drop(container);
        if again {
            if run.since.elapsed() >= policy::HEALTHY_RUN {
                *attempt = 0;
            }
            let wait = policy::backoff(*attempt);
            *attempt += 1;
            if self.wait_or_stop(wait) {
                self.record_locked(|i| i.restart_count += 1);
                return Some(true);
            }
            self.record_locked(|i| i.restarting = false);
        }
        if self.launch.auto_remove || self.lease_ended {
            self.remove();
        }
        None
    }

    /// Sleep out the backoff; false if a `stop` (SIGUSR1 and the marker)
    /// or the end of the lease came first.
    fn wait_or_stop(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            if self.lease_ended || self.dir.join(STOP_REQUESTED).exists() {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
            let mut fds = vec![PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN)];
            if let Some(l) = &self.lease {
                fds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
            }
            let _ = poll(&mut fds, PollTimeout::from(ms));
            let lease_gone = fds
                .get(1)
                .is_some_and(|f| f.revents().is_some_and(|r| !r.is_empty()));
            drop(fds);
            while let Ok(Some(_)) = self.sfd.read_signal() {}
            if lease_gone {
                self.lease = None;
                self.lease_ended = true;
            }
        }
    }

    /// `--rm`, or the lease ended: delete the container, and with a lease
    /// its anonymous volumes too.
    fn remove(&self) {
        let Ok(container) = self.store.load(&self.id) else {
            return;
        };
        // The journal goes with the container: read it first.
        let anonymous = if self.lease_ended {
            crate::storage::anonymous_volumes(&self.dir)
        } else {
            Vec::new()
        };
        let removed = crate::create::destroy_checked(container, self.log)
            .and_then(|()| crate::storage::remove_volumes(&anonymous));
        if let Err(e) = removed {
            self.log.warning(&e.to_string());
        }
    }
}

enum Event {
    Signal,
    Output(usize),
    Accept,
    Client(usize),
    Lease,
}

/// Reap every exited child (orphans of the container come to us too);
/// the init's exit code once it is among them, 128+N for signal N.
fn reap(init: Pid) -> Option<i32> {
    let mut code = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, c)) if pid == init => code = Some(c),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == init => code = Some(128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return code,
            Ok(_) => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_clean_read_only_file_mappings() {
        let smaps = "\
1000-3000 r--p 00000000 fd:00 12 /usr/bin/hull
Rss:                   8 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
3000-5000 r--p 00002000 fd:00 12 /usr/bin/hull
Private_Dirty:         4 kB
Anonymous:             4 kB
5000-6000 rw-p 00004000 fd:00 12 /usr/bin/hull
Private_Dirty:         0 kB
Anonymous:             0 kB
6000-7000 r-xp 00000000 00:00 0 
Private_Dirty:         0 kB
Anonymous:             0 kB
7000-8000 r--p 00000000 fd:00 13 /usr/lib/libx.so
Private_Dirty:         0 kB
Anonymous:             4 kB
8000-9000 r-xp 00000000 fd:00 13 /usr/lib/libc.so.6
Private_Dirty:         0 kB
Anonymous:             0 kB
";
        assert_eq!(
            clean_file_mappings(smaps),
            [(0x1000, 0x3000), (0x8000, 0x9000)]
        );
    }
}
