//! A private `redis-server` for a test: on a free port, in the root namespace or inside a
//! test namespace, with its data in a temporary directory; killed on drop. It can be
//! killed and started again on the same port and data (append-only file, fsync on every
//! write, so what it acknowledged survives a kill).

use std::{
    io,
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::{Child, Netns, io_err};

/// Returns `true` if `redis-server` is installed; otherwise says why the test is skipped
/// or, under [`crate::STRICT_ENV`], fails.
pub fn require_redis(test: &str) -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    let why = "needs redis-server (`cargo xtask setup` installs it)";
    assert!(
        std::env::var_os(crate::STRICT_ENV).is_none(),
        "{test} cannot run: {why} ({} is set)",
        crate::STRICT_ENV
    );
    eprintln!("SKIPPED {test}: {why}");
    false
}

/// A loopback port nothing listens on now.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running `redis-server`.
#[derive(Debug)]
pub struct RedisServer {
    // Field order: the process stops before its directory is removed.
    child: Option<Child>,
    ns: Option<String>,
    bind: IpAddr,
    /// Its port.
    pub port: u16,
    extra: Vec<String>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts one on 127.0.0.1 in this namespace, with `extra` configuration arguments
    /// (e.g. `["--requirepass", "pw"]`).
    ///
    /// # Errors
    /// redis-server is missing or did not come up within five seconds.
    pub fn start(extra: &[&str]) -> io::Result<Self> {
        Self::start_in(None, Ipv4Addr::LOCALHOST.into(), extra)
    }

    /// Starts one inside `ns` (or this namespace), listening on `bind` (`0.0.0.0` for
    /// every address of the namespace).
    ///
    /// # Errors
    /// As [`Self::start`].
    pub fn start_in(ns: Option<&Netns>, bind: IpAddr, extra: &[&str]) -> io::Result<Self> {
        let mut server = Self {
            child: None,
            ns: ns.map(|n| n.name().to_owned()),
            bind,
            port: free_port()?,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            dir: tempfile::tempdir()?,
        };
        server.spawn()?;
        Ok(server)
    }

    fn command(&self, args: &[&str]) -> Command {
        match &self.ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).args(args);
                c
            }
            None => {
                let mut c = Command::new(args[0]);
                c.args(&args[1..]);
                c
            }
        }
    }

    fn spawn(&mut self) -> io::Result<()> {
        let port = self.port.to_string();
        let bind = self.bind.to_string();
        let dir = self.dir.path().to_string_lossy().into_owned();
        #[rustfmt::skip]
        let mut args = vec![
            "redis-server", "--port", &port, "--bind", &bind, "--dir", &dir,
            "--save", "", "--appendonly", "yes", "--appendfsync", "always",
            "--protected-mode", "no", "--daemonize", "no", "--logfile", "redis.log",
        ];
        args.extend(self.extra.iter().map(String::as_str));
        let mut cmd = self.command(&args);
        cmd.stdout(Stdio::null());
        self.child = Some(Child::spawn(cmd)?);
        self.wait_ready()
    }

    fn wait_ready(&self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self.ping() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
                return Err(io_err(format!(
                    "redis-server on port {} did not come up:\n{log}",
                    self.port
                )));
            }
            thread::sleep(Duration::from_millis(30));
        }
    }

    /// Whether it answers PING.
    pub fn ping(&self) -> bool {
        self.cli(&["PING"])
            .is_ok_and(|o| o.trim() == "PONG" || o.contains("NOAUTH"))
    }

    /// Its address as seen from its own namespace.
    pub fn local_addr(&self) -> SocketAddr {
        let ip = if self.bind.is_unspecified() {
            Ipv4Addr::LOCALHOST.into()
        } else {
            self.bind
        };
        SocketAddr::new(ip, self.port)
    }

    /// `redis-cli` with `args`, run in its namespace; its output.
    ///
    /// # Errors
    /// redis-cli could not run or failed.
    pub fn cli(&self, args: &[&str]) -> io::Result<String> {
        let a = self.local_addr();
        let (host, port) = (a.ip().to_string(), a.port().to_string());
        let mut all = vec!["redis-cli", "--no-auth-warning", "-h", &host, "-p", &port];
        all.extend(args);
        let out = crate::run(&mut self.command(&all))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Kills it (SIGKILL, as a crash would) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.signal(libc::SIGKILL);
            let _ = child.wait_timeout(Duration::from_secs(5));
        }
    }

    /// Starts it again on the same port with the same data.
    ///
    /// # Errors
    /// As [`Self::start`].
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.spawn()
    }

    /// Its data directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether something accepts connections at `addr` from this namespace.
    pub fn reachable(addr: SocketAddr) -> bool {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
