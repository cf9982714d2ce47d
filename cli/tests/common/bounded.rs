//! Children that cannot hang or spin a test run: each `ouk` spawned here runs under a CPU
//! bound the kernel enforces and a wall-clock deadline, and overrunning either is a test
//! failure that names the child.
//!
//! Both bounds are generous on purpose: they catch a hang or a blowup (a decoder expanding
//! a bomb, a busy loop, a lock never released), never a slow machine. Passing never depends
//! on timing:
//! - CPU: `RLIMIT_CPU` set in the child before `exec` (soft limit: `SIGXCPU`, hard limit a
//!   few seconds later: `SIGKILL`). CPU time is what a blowup burns, and it does not grow
//!   when other processes share the cores, so a loaded CI host does not trip it;
//! - wall: a deadline after which the test kills the child itself, for a hang that burns no
//!   CPU (blocked on a lock or a read).
//!
//! Invariants: the child is reaped exactly once, by `wait4` (std's `Child` is never waited
//! for after spawning, so a recycled pid is never signalled); its CPU time (user + system,
//! all threads) comes from that `wait4`'s `rusage`; its stdout and stderr are drained by
//! threads while it runs, so a chatty child never blocks on a full pipe.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// CPU seconds a child may use unless a test says otherwise (`OUK_TEST_CPU_SECS`
/// overrides): far past anything a correct `ouk` needs for a test input.
pub fn default_cpu_secs() -> u64 {
    std::env::var("OUK_TEST_CPU_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

/// Wall-clock deadline unless a test says otherwise: only a hang gets there.
pub const DEFAULT_WALL: Duration = Duration::from_secs(600);

/// A running child and the bounds it runs under.
pub struct Bounded {
    child: Child,
    what: String,
    cpu_secs: u64,
    wall: Duration,
    started: Instant,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    /// The child's wait status and resource usage, once reaped.
    done: Option<(libc::c_int, libc::rusage)>,
    /// Reaped (by `wait4`): its pid may belong to another process now.
    reaped: bool,
}

/// What a bounded child did.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stdout (empty when not piped).
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr (empty when not piped).
    pub stderr: Vec<u8>,
    /// User + system CPU time, all threads.
    pub cpu: Duration,
    /// Wall time from spawn to exit.
    pub wall: Duration,
}

impl Finished {
    /// The exit code, or -1 when killed by a signal.
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
}

fn drain(r: Option<impl Read + Send + 'static>) -> Option<JoinHandle<Vec<u8>>> {
    r.map(|mut r| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = r.read_to_end(&mut out);
            out
        })
    })
}

fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
        + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
}

impl Bounded {
    /// Spawn `cmd` (stdout and stderr piped) under the default bounds; `what` names it in
    /// failures.
    pub fn spawn(cmd: &mut Command, what: impl Into<String>) -> Bounded {
        Bounded::spawn_with(cmd, what, default_cpu_secs(), DEFAULT_WALL)
    }

    /// Spawn `cmd` (stdout and stderr piped) with at most `cpu_secs` of CPU and `wall` of
    /// wall time.
    pub fn spawn_with(
        cmd: &mut Command,
        what: impl Into<String>,
        cpu_secs: u64,
        wall: Duration,
    ) -> Bounded {
        let what = what.into();
        let limit = libc::rlimit {
            rlim_cur: cpu_secs as libc::rlim_t,
            // The hard limit is SIGKILL, for a child that ignores SIGXCPU.
            rlim_max: cpu_secs.saturating_add(5) as libc::rlim_t,
        };
        // SIGXCPU's default action dumps core: no core files from a deliberate kill.
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: between fork and exec the closure only calls setrlimit (async-signal
        // safe) on values copied in; nothing is allocated or locked.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_CORE, &no_core) != 0
                    || libc::setrlimit(libc::RLIMIT_CPU, &limit) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: spawn: {e}"));
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        Bounded {
            child,
            what,
            cpu_secs,
            wall,
            started: Instant::now(),
            stdout,
            stderr,
            done: None,
            reaped: false,
        }
    }

    /// The child's pid.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// What the child is (as given at spawn).
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Reap the child if it exited (or, with `block`, once it exits).
    fn reap(&mut self, block: bool) -> Option<(libc::c_int, libc::rusage)> {
        if self.reaped {
            return self.done;
        }
        let pid = self.child.id() as libc::pid_t;
        let mut status: libc::c_int = 0;
        // SAFETY: rusage is plain data; zeroes are a valid value.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let flags = if block { 0 } else { libc::WNOHANG };
        loop {
            // SAFETY: wait4 on our own child, with out-parameters we own. Only this type
            // reaps it (std's `Child` is never waited for), so the pid is still ours.
            let r = unsafe { libc::wait4(pid, &mut status, flags, &mut ru) };
            if r == pid {
                self.reaped = true;
                self.done = Some((status, ru));
                return self.done;
            }
            if r == 0 {
                return None;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                panic!("{}: wait4: {e}", self.what);
            }
        }
    }

    /// Whether the child is still running (not reaped; a child that exited is reaped, and
    /// its outcome kept for [`Bounded::wait`]).
    pub fn running(&mut self) -> bool {
        self.reap(false).is_none()
    }

    /// Wait for the child to exit. `Err` names the child when it overran a bound: killed by
    /// the kernel past its CPU bound, or killed here past its wall deadline.
    pub fn wait(mut self) -> Result<Finished, String> {
        let (status, ru) = loop {
            if let Some(done) = self.reap(false) {
                break done;
            }
            if self.started.elapsed() > self.wall {
                self.kill();
                return Err(format!(
                    "{}: still running after {:?}, a deadline only a hang reaches: killed",
                    self.what, self.wall
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let wall = self.started.elapsed();
        let status = ExitStatus::from_raw(status);
        let cpu = tv(ru.ru_utime) + tv(ru.ru_stime);
        let stdout = self
            .stdout
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        let signal = status.signal();
        if signal == Some(libc::SIGXCPU)
            || (signal == Some(libc::SIGKILL) && cpu >= Duration::from_secs(self.cpu_secs))
        {
            return Err(format!(
                "{}: used {cpu:?} of CPU, past its {} s bound (killed by signal {}): a \
                 blowup or a busy loop\nstderr: {}",
                self.what,
                self.cpu_secs,
                signal.unwrap_or_default(),
                String::from_utf8_lossy(&stderr)
            ));
        }
        Ok(Finished {
            status,
            stdout,
            stderr,
            cpu,
            wall,
        })
    }
}

impl Bounded {
    /// SIGKILL the child and reap it (nothing when it was reaped already: its pid may be
    /// another process's by now).
    pub fn kill(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            self.reap(true);
        }
    }
}

impl Drop for Bounded {
    /// A test that fails half-way does not leave its child running.
    fn drop(&mut self) {
        self.kill();
    }
}
