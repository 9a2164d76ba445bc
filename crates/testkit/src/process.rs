//! Child processes that cannot outlive the test that started them.
//!
//! Three layers make sure a peer never keeps running:
//! 1. [`ChildGuard`]'s `Drop` kills the child's whole process group with `SIGKILL` and reaps
//!    it. `Drop` also runs while a panicking test unwinds.
//! 2. Every child is started in its own process group (`setpgid(0, 0)`), so the kill reaches
//!    anything the child itself started.
//! 3. On Linux every child gets `PR_SET_PDEATHSIG = SIGKILL`, so it is killed by the kernel
//!    when the test binary dies without unwinding (aborted, `SIGKILL`ed, Ctrl-C). The death
//!    signal fires when the *thread* that forked the child exits, so children are forked
//!    from one long-lived spawner thread rather than from the (short-lived) test thread:
//!    a guard kept in a `static` and shared between tests is therefore safe too.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

type SpawnReply = mpsc::Sender<io::Result<Child>>;

/// The spawner thread: it never exits while the process lives, so `PR_SET_PDEATHSIG`
/// only fires when the test process itself goes away.
fn spawner() -> &'static Mutex<mpsc::Sender<(Command, SpawnReply)>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<(Command, SpawnReply)>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<(Command, SpawnReply)>();
        std::thread::Builder::new()
            .name("testkit-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("testkit: cannot start the spawner thread");
        Mutex::new(tx)
    })
}

fn spawn_detached_from_test_thread(mut cmd: Command) -> io::Result<Child> {
    cmd.process_group(0);
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl: then nobody would kill us.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("testkit spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("testkit spawner thread did not answer"))?
}

/// A running child process that is killed (with its whole process group) and reaped on drop.
///
/// Create it with [`ChildGuard::spawn`] (output to a log file) or
/// [`ChildGuard::spawn_with_stdio`].
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Option<Child>,
    log_path: Option<PathBuf>,
}

impl ChildGuard {
    /// Starts `cmd` with stdin closed and stdout and stderr appended to `log_path` (created if
    /// missing), in a new process group, killed when the guard drops. `name` is used in
    /// messages only.
    pub fn spawn(name: &str, mut cmd: Command, log_path: &Path) -> io::Result<ChildGuard> {
        let log = File::options().create(true).append(true).open(log_path)?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        let child = spawn_detached_from_test_thread(cmd)?;
        Ok(ChildGuard {
            name: name.to_string(),
            child: Some(child),
            log_path: Some(log_path.to_path_buf()),
        })
    }

    /// Starts `cmd` as it is configured (the caller chose its stdio), in a new process group,
    /// killed when the guard drops.
    pub fn spawn_with_stdio(name: &str, cmd: Command) -> io::Result<ChildGuard> {
        let child = spawn_detached_from_test_thread(cmd)?;
        Ok(ChildGuard {
            name: name.to_string(),
            child: Some(child),
            log_path: None,
        })
    }

    /// The name given at spawn time.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's process id (also its process group id), or `None` once it was killed.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The log file receiving the child's stdout and stderr, if [`ChildGuard::spawn`] made one.
    pub fn log_path(&self) -> Option<&Path> {
        self.log_path.as_deref()
    }

    /// The last `lines` lines of the log file (empty when there is none); for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        self.log_path
            .as_deref()
            .map(|p| log_tail(p, lines))
            .unwrap_or_default()
    }

    /// `Some(status)` if the child has exited (it is then reaped), `None` while it runs or
    /// after [`ChildGuard::kill`].
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// True while the child process is alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Polls `ready` every 25 ms until it returns true (→ `Ok`) or `timeout` passes
    /// (→ `Err`). Fails early when the child exits meanwhile. Error messages carry the last
    /// 40 lines of the log. For example, wait for a child's port:
    /// `guard.wait_until(timeout, || port_is_open(addr))`.
    pub fn wait_until(
        &mut self,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Err(format!(
                    "{} exited before it was ready ({status}); {}",
                    self.name,
                    self.log_note()
                ));
            }
            if ready() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} was not ready after {timeout:?}; {}",
                    self.name,
                    self.log_note()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn log_note(&self) -> String {
        match self.log_path() {
            Some(p) => format!("log {}:\n{}", p.display(), log_tail(p, 40)),
            None => "no log file".to_string(),
        }
    }

    /// Kills the child's process group with `SIGKILL` and reaps the child. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id() as libc::pid_t;
            // The group id is the child's pid (process_group(0)). An unreaped child keeps
            // its pid and group reserved, so this cannot hit an unrelated process.
            // SAFETY: plain syscall.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Environment variable: when set (to anything), the peers' temp dirs (logs, configs,
/// registry storage) are kept after drop and their paths printed to stderr. They are
/// always kept when the handle drops while the thread panics (a failing test).
pub const KEEP_ENV: &str = "ACR_WEBHOOK_TESTKIT_KEEP";

/// Keeps `dir` (disables its cleanup) if the thread is panicking or `$ACR_WEBHOOK_TESTKIT_KEEP`
/// is set, and says so on stderr.
pub(crate) fn keep_dir_if_wanted(dir: &mut tempfile::TempDir, what: &str) {
    let panicking = std::thread::panicking();
    if panicking || std::env::var_os(KEEP_ENV).is_some() {
        dir.disable_cleanup(true);
        eprintln!(
            "testkit: kept the {what} files (logs, config) in {}{}",
            dir.path().display(),
            if panicking {
                " (the test panicked)"
            } else {
                ""
            }
        );
    }
}

/// The last `lines` lines of a text file, or a note that it cannot be read.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match File::open(path) {
        Ok(f) => {
            let all: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
            let start = all.len().saturating_sub(lines);
            all[start..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// A memory figure of process `pid` from `/proc/<pid>/status`, in KiB: `field` is its name
/// with the colon, such as `"VmHWM:"` (peak resident memory) or `"VmRSS:"`. Panics when the
/// process or the field is missing.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}
