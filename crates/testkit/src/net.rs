//! Loopback ports: picking a free one and waiting until something listens on it.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A port on 127.0.0.1 held open by a bound listener until [`PortReservation::release`] (or
/// drop). Holding it until just before a child binds the port narrows the window in which
/// another test could be handed the same port.
#[derive(Debug)]
pub struct PortReservation {
    listener: TcpListener,
    port: u16,
}

impl PortReservation {
    /// Binds 127.0.0.1:0 and keeps the listener.
    pub fn new() -> io::Result<PortReservation> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        Ok(PortReservation { listener, port })
    }

    /// The reserved port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Closes the listener so that a child can bind the port, and returns the port.
    pub fn release(self) -> u16 {
        drop(self.listener);
        self.port
    }
}

/// A port that was free on 127.0.0.1 a moment ago (bind 127.0.0.1:0, read the port, close).
///
/// Panics if the loopback interface cannot be bound at all.
pub fn free_port() -> u16 {
    PortReservation::new()
        .expect("testkit: cannot bind 127.0.0.1:0")
        .release()
}

/// True if something accepts TCP connections on `addr` right now.
pub fn port_is_open(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Waits until a TCP connect to `addr` succeeds, polling every 25 ms, or fails with
/// `ErrorKind::TimedOut` after `timeout`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if port_is_open(addr) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("nothing listened on {addr} within {timeout:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Waits until a TCP connect to `addr` is refused (nothing listens any more), or fails with
/// `ErrorKind::TimedOut` after `timeout`.
pub fn wait_for_port_closed(addr: SocketAddr, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if !port_is_open(addr) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{addr} still accepted connections after {timeout:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Raises this process's soft limit on open files to at least `wanted` (at most the hard
/// limit), for tests that hold thousands of sockets; children started afterwards inherit it.
/// Returns the soft limit now in force.
pub fn raise_open_files_limit(wanted: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid, initialised struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < wanted {
            let raised = libc::rlimit {
                rlim_cur: wanted.min(limit.rlim_max),
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}
