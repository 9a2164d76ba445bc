//! Ports and process guards.

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use acr_webhook_testkit::{
    free_port, port_is_open, wait_for_port, wait_for_port_closed, ChildGuard, PortReservation,
};
use common::{alive, gone_within};

#[test]
fn free_port_can_be_bound_on_loopback() {
    let port = free_port();
    assert_ne!(port, 0);
    let l = TcpListener::bind(("127.0.0.1", port)).expect("the free port is bindable");
    assert_eq!(l.local_addr().unwrap().port(), port);
}

#[test]
fn reservation_holds_the_port_until_released() {
    let r = PortReservation::new().unwrap();
    let addr = r.addr();
    assert!(
        TcpListener::bind(addr).is_err(),
        "reserved port must be busy"
    );
    let port = r.release();
    assert_eq!(port, addr.port());
    TcpListener::bind(addr).expect("released port is bindable");
}

#[test]
fn wait_for_port_sees_listener_and_times_out_without_one() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    wait_for_port(addr, Duration::from_secs(1)).unwrap();
    assert!(port_is_open(addr));
    drop(l);
    wait_for_port_closed(addr, Duration::from_secs(1)).unwrap();
    let t = Instant::now();
    let err = wait_for_port(addr, Duration::from_millis(200)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(t.elapsed() >= Duration::from_millis(200));
}

/// `sh` starts a background `sleep` (a grandchild of the test) and writes its pid.
fn spawn_shell_with_grandchild(dir: &std::path::Path) -> (ChildGuard, u32, u32) {
    let pidfile = dir.join("grandchild.pid");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("sleep 300 & echo $! > {}; wait", pidfile.display()));
    let guard = ChildGuard::spawn("sh", cmd, &dir.join("sh.log")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let grandchild = loop {
        if let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "no pid file");
        std::thread::sleep(Duration::from_millis(10));
    };
    let child = guard.id().unwrap();
    (guard, child, grandchild)
}

#[test]
fn drop_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let (mut guard, child, grandchild) = spawn_shell_with_grandchild(dir.path());
    assert!(guard.is_running());
    assert!(alive(child) && alive(grandchild));
    drop(guard);
    assert!(!alive(child), "child reaped at once");
    assert!(
        gone_within(grandchild, Duration::from_secs(2)),
        "grandchild killed"
    );
}

#[test]
fn a_panicking_test_still_kills_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pids = std::sync::Mutex::new((0, 0));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let (_guard, child, grandchild) = spawn_shell_with_grandchild(dir.path());
        *pids.lock().unwrap() = (child, grandchild);
        panic!("test failure while peers run");
    }));
    assert!(result.is_err());
    let (child, grandchild) = *pids.lock().unwrap();
    assert!(!alive(child));
    assert!(gone_within(grandchild, Duration::from_secs(2)));
}

#[test]
fn kill_is_idempotent_and_reports_exit() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = ChildGuard::spawn("true", Command::new("true"), &dir.path().join("l")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while g.is_running() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    g.kill();
    g.kill();
    assert_eq!(g.id(), None);
}

/// Run by `children_die_with_an_aborted_test_process` in a child copy of this test binary:
/// starts a guarded `sleep`, writes its pid, and aborts (no unwinding, no Drop).
#[test]
fn pdeathsig_helper() {
    let Some(pidfile) = std::env::var_os("TESTKIT_PDEATHSIG_HELPER") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("sleep");
    cmd.arg("300");
    let guard = ChildGuard::spawn("sleep", cmd, &dir.path().join("l")).unwrap();
    std::fs::write(&pidfile, guard.id().unwrap().to_string()).unwrap();
    std::process::abort();
}

#[test]
fn children_die_with_an_aborted_test_process() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("sleep.pid");
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "pdeathsig_helper", "--test-threads=1"])
        .env("TESTKIT_PDEATHSIG_HELPER", &pidfile)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the helper aborts");
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .expect("helper wrote the pid")
        .trim()
        .parse()
        .unwrap();
    assert!(
        gone_within(pid, Duration::from_secs(3)),
        "the kernel killed the orphan (PR_SET_PDEATHSIG)"
    );
}

#[test]
fn wait_until_reports_readiness_exit_and_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("l");
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo starting; exit 3"]);
    let mut dead = ChildGuard::spawn("dies", cmd, &log).unwrap();
    let err = dead
        .wait_until(Duration::from_secs(5), || false)
        .unwrap_err();
    assert!(err.contains("exited before it was ready"), "{err}");
    assert!(err.contains("starting"), "log tail in the message: {err}");

    let mut cmd = Command::new("sleep");
    cmd.arg("300");
    let mut slow = ChildGuard::spawn("sleeps", cmd, &dir.path().join("m")).unwrap();
    let err = slow
        .wait_until(Duration::from_millis(100), || false)
        .unwrap_err();
    assert!(err.contains("was not ready after"), "{err}");
    let mut calls = 0;
    slow.wait_until(Duration::from_secs(5), || {
        calls += 1;
        calls == 3
    })
    .unwrap();
}
