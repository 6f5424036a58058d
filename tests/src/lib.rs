//! Helpers for sniffer's integration tests: network namespaces, veth pairs and servers
//! that clean up on drop. The tests themselves are in `tests/tests/`.
//!
//! Everything here shells out to `ip`, `ethtool` and `nginx`, as an administrator would,
//! and every resource is owned by a guard whose `Drop` removes it, also when a test
//! panics. Names include the process id and a counter, so parallel tests and parallel
//! runs never collide.
//!
//! ```no_run
//! use tests::{Netns, VethPair, HttpServer};
//! if !tests::require_root("my_test") { return; }
//! let server_ns = Netns::new("srv").unwrap();
//! let client_ns = Netns::new("cli").unwrap();
//! let veth = VethPair::new(&server_ns, &client_ns).unwrap();
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("f.bin"), vec![7u8; 1 << 20]).unwrap();
//! let _server = HttpServer::start(&server_ns, dir.path(), &[80]).unwrap();
//! let out = client_ns
//!     .run(&["curl", "-s", "-o", "/dev/null", &format!("http://{}/f.bin", veth.a_v4)])
//!     .unwrap();
//! ```

pub mod audio;
pub mod process;
pub mod radio;
pub mod redis;

use std::{
    fs::File,
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

/// True when running as root (the tests need CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Set by `cargo xtask test` when it runs the full suite: a test that would skip fails
/// instead, so a missing privilege or corpus cannot pass unnoticed.
pub const STRICT_ENV: &str = "SNIFFER_TESTS_STRICT";

/// Returns `true` if the test may run; otherwise prints why it is skipped, or, under
/// [`STRICT_ENV`], fails.
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    let why = "needs root (network namespaces, eBPF); run `cargo xtask test` as root";
    assert!(
        std::env::var_os(STRICT_ENV).is_none(),
        "{test} cannot run: {why} ({STRICT_ENV} is set)"
    );
    eprintln!("SKIPPED {test}: {why}");
    false
}

/// The `sniffer` binary of this build: next to the test executable's `deps/` directory;
/// built with cargo if this run did not build it.
pub fn sniffer_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/PROFILE/deps/TEST");
    let bin = profile_dir.join("sniffer");
    if !bin.exists() {
        let target_dir = profile_dir.parent().expect("target/PROFILE");
        let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["build", "-p", "sniffer", "--bin", "sniffer", "--target-dir"])
            .arg(target_dir)
            .status()
            .expect("running cargo");
        assert!(status.success(), "building the sniffer binary failed");
    }
    bin
}

/// The capture corpus (`../shared/captures` beside the workspace, or `SNIFFER_CORPUS`);
/// `None`, saying why, when it is absent (a failure under [`STRICT_ENV`]).
pub fn corpus(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("SNIFFER_CORPUS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures"),
        PathBuf::from,
    );
    if dir.join("INDEX.tsv").is_file() {
        return Some(dir);
    }
    let why = format!("no corpus at {} (set SNIFFER_CORPUS)", dir.display());
    assert!(
        std::env::var_os(STRICT_ENV).is_none(),
        "{test} cannot run: {why} ({STRICT_ENV} is set)"
    );
    eprintln!("SKIPPED {test}: {why}");
    None
}

/// A name unique to this process and call: `{prefix}{pid}x{n}`, at most 15 bytes so it
/// also fits an interface name.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id() % 1_000_000;
    let mut name = format!("{prefix}{pid}x{n}");
    name.truncate(15);
    name
}

fn io_err(msg: String) -> io::Error {
    io::Error::other(msg)
}

/// Runs `cmd`, failing with its stderr if it exits non-zero.
///
/// # Errors
/// The command could not start or failed.
pub fn run(cmd: &mut Command) -> io::Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io_err(format!("{cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(io_err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out)
}

/// Runs `args[0]` with the rest as arguments, failing on a non-zero exit.
///
/// # Errors
/// As [`run`].
pub fn run_args(args: &[&str]) -> io::Result<Output> {
    let (prog, rest) = args
        .split_first()
        .ok_or_else(|| io_err("empty command".into()))?;
    run(Command::new(prog).args(rest))
}

/// Runs a command inside a namespace (`ip netns exec NS args...`).
///
/// # Errors
/// As [`run`].
pub fn run_in(ns: &Netns, args: &[&str]) -> io::Result<Output> {
    run(&mut ns.command(args))
}

/// A network namespace, deleted (with every process still in it killed) on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `ip netns add {prefix}{pid}x{n}` with `lo` up.
    ///
    /// # Errors
    /// `ip` failed (not root?).
    pub fn new(prefix: &str) -> io::Result<Self> {
        let name = unique_name(&format!("sn{prefix}"));
        run_args(&["ip", "netns", "add", &name])?;
        let ns = Self { name };
        ns.run(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Its name, for `ip netns exec` and `ip -n`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec NAME args...`, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(args);
        cmd
    }

    /// Runs a command in this namespace, failing on a non-zero exit.
    ///
    /// # Errors
    /// As [`run`].
    pub fn run(&self, args: &[&str]) -> io::Result<Output> {
        run(&mut self.command(args))
    }

    /// Runs `f` on a new thread that has joined this namespace, and returns its result.
    /// Sockets opened inside `f` stay in this namespace wherever they are used later.
    ///
    /// # Errors
    /// Joining the namespace failed. A panic in `f` is resumed on the caller.
    pub fn enter<F, R>(&self, f: F) -> io::Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let path = PathBuf::from("/run/netns").join(&self.name);
        let file = File::open(&path).map_err(|e| io_err(format!("{}: {e}", path.display())))?;
        thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: setns on a valid namespace descriptor affects only this thread.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io_err(format!(
                        "setns {}: {}",
                        path.display(),
                        io::Error::last_os_error()
                    )));
                }
                Ok(f())
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Waits until something accepts TCP connections at `addr` inside this namespace.
    ///
    /// # Errors
    /// Nothing listened within `timeout`.
    pub fn wait_for_tcp(&self, addr: SocketAddr, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let ok = self
                .enter(|| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())?;
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io_err(format!(
                    "nothing listens on {addr} in netns {}",
                    self.name
                )));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill what still runs inside, or the namespace lingers.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    // SAFETY: kill has no memory-safety preconditions.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        if let Err(e) = run_args(&["ip", "netns", "delete", &self.name]) {
            eprintln!("warning: could not delete netns {}: {e}", self.name);
        }
    }
}

/// A veth pair: end `a` in one namespace, end `b` in another, both up, with IPv4
/// `10.X.Y.1/24` / `.2` and IPv6 `fd5e:X:Y::1/64` / `::2` (duplicate address detection
/// off, so the addresses are usable at once). Deleted on drop.
#[derive(Debug)]
pub struct VethPair {
    /// Interface name of end `a` (in `ns_a`).
    pub a_if: String,
    /// Interface name of end `b` (in `ns_b`).
    pub b_if: String,
    /// Namespace of end `a`.
    pub ns_a: String,
    /// Namespace of end `b`.
    pub ns_b: String,
    /// IPv4 address of end `a`.
    pub a_v4: Ipv4Addr,
    /// IPv4 address of end `b`.
    pub b_v4: Ipv4Addr,
    /// IPv6 address of end `a`.
    pub a_v6: Ipv6Addr,
    /// IPv6 address of end `b`.
    pub b_v6: Ipv6Addr,
}

impl VethPair {
    /// Creates the pair between `a` and `b`.
    ///
    /// # Errors
    /// `ip` failed.
    pub fn new(a: &Netns, b: &Netns) -> io::Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // Distinct subnets per pair within this process; namespaces isolate processes.
        let (x, y) = ((n / 250 % 250) as u8 + 1, (n % 250) as u8 + 1);
        let a_if = unique_name("sva");
        let b_if = unique_name("svb");
        let pair = Self {
            a_v4: Ipv4Addr::new(10, x, y, 1),
            b_v4: Ipv4Addr::new(10, x, y, 2),
            a_v6: Ipv6Addr::new(0xfd5e, x.into(), y.into(), 0, 0, 0, 0, 1),
            b_v6: Ipv6Addr::new(0xfd5e, x.into(), y.into(), 0, 0, 0, 0, 2),
            ns_a: a.name().to_owned(),
            ns_b: b.name().to_owned(),
            a_if,
            b_if,
        };
        #[rustfmt::skip]
        run_args(&[
            "ip", "link", "add", &pair.a_if, "netns", a.name(), "type", "veth",
            "peer", "name", &pair.b_if, "netns", b.name(),
        ])?;
        for (ns, dev, v4, v6) in [
            (a, &pair.a_if, pair.a_v4, pair.a_v6),
            (b, &pair.b_if, pair.b_v4, pair.b_v6),
        ] {
            ns.run(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{dev}.accept_dad=0"),
            ])?;
            ns.run(&["ip", "addr", "add", &format!("{v4}/24"), "dev", dev])?;
            #[rustfmt::skip]
            ns.run(&["ip", "addr", "add", &format!("{v6}/64"), "dev", dev, "nodad"])?;
            ns.run(&["ip", "link", "set", dev, "up"])?;
        }
        Ok(pair)
    }

    /// Address of end `a` in the given family.
    pub fn a_addr(&self, v6: bool) -> IpAddr {
        if v6 {
            self.a_v6.into()
        } else {
            self.a_v4.into()
        }
    }

    /// Address of end `b` in the given family.
    pub fn b_addr(&self, v6: bool) -> IpAddr {
        if v6 {
            self.b_v6.into()
        } else {
            self.b_v4.into()
        }
    }

    /// Turns TSO, GSO and GRO on or off on both ends (`ethtool -K`). With them on, the
    /// kernel hands ~64 KiB skbs to the capture; off, MTU-sized packets.
    ///
    /// # Errors
    /// `ethtool` failed.
    pub fn set_offloads(&self, on: bool) -> io::Result<()> {
        let v = if on { "on" } else { "off" };
        for (ns, dev) in [(&self.ns_a, &self.a_if), (&self.ns_b, &self.b_if)] {
            #[rustfmt::skip]
            run_args(&[
                "ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", v, "gso", v, "gro", v,
            ])?;
        }
        Ok(())
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting one end deletes both; it may already be gone with its namespace.
        let _ = Command::new("ip")
            .args(["-n", &self.ns_a, "link", "del", &self.a_if])
            .stderr(Stdio::null())
            .status();
    }
}

/// A child process, killed (SIGTERM, then SIGKILL after a second) and reaped on drop.
#[derive(Debug)]
pub struct Child {
    child: std::process::Child,
    what: String,
}

impl Child {
    /// Starts `cmd`.
    ///
    /// # Errors
    /// It could not start.
    pub fn spawn(mut cmd: Command) -> io::Result<Self> {
        let what = format!("{cmd:?}");
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| io_err(format!("{what}: {e}")))?;
        Ok(Self { child, what })
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (e.g. `libc::SIGINT` for a clean stop).
    ///
    /// # Errors
    /// kill(2) failed.
    pub fn signal(&self, sig: i32) -> io::Result<()> {
        // SAFETY: kill has no memory-safety preconditions.
        if unsafe { libc::kill(self.child.id() as i32, sig) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits for it to exit, up to `timeout`, and returns its output if it was piped.
    ///
    /// # Errors
    /// It did not exit in time (it is then killed on drop), or waiting failed.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                return Err(io_err(format!(
                    "{} did not exit within {timeout:?}",
                    self.what
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The underlying child, e.g. to take its piped stderr.
    pub fn inner(&mut self) -> &mut std::process::Child {
        &mut self.child
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = self.signal(libc::SIGTERM);
        if self.wait_timeout(Duration::from_secs(1)).is_err() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// nginx serving a directory on some ports (IPv4 and IPv6) inside a namespace. Its
/// configuration, logs and temp files live in a private temporary directory. Stopped on
/// drop.
#[derive(Debug)]
pub struct HttpServer {
    // Field order: the process stops before its directory is removed.
    _child: Child,
    _dir: tempfile::TempDir,
}

impl HttpServer {
    /// Starts nginx in `ns` serving `root` on `ports`, and waits until it accepts.
    ///
    /// # Errors
    /// nginx is missing or did not come up within five seconds.
    pub fn start(ns: &Netns, root: &Path, ports: &[u16]) -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let d = dir.path().display();
        let listens: String = ports
            .iter()
            .map(|p| format!("    listen 0.0.0.0:{p};\n    listen [::]:{p};\n"))
            .collect();
        let conf = format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n\
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             default_type application/octet-stream;\n  sendfile on;\n\
             server {{\n{listens}    root {};\n  }}\n}}\n",
            root.display()
        );
        let child = spawn_nginx(ns, dir.path(), &conf, ports)?;
        Ok(Self {
            _child: child,
            _dir: dir,
        })
    }
}

/// Writes `conf` as `dir/nginx.conf`, starts nginx in `ns` with `dir` as its prefix, and
/// waits until it accepts on every port in `ports` (on 127.0.0.1 inside `ns`).
///
/// # Errors
/// nginx is missing or did not come up within five seconds (it is stopped then).
pub fn spawn_nginx(ns: &Netns, dir: &Path, conf: &str, ports: &[u16]) -> io::Result<Child> {
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let conf_s = conf_path.to_string_lossy().into_owned();
    let prefix = dir.to_string_lossy().into_owned();
    let mut cmd = ns.command(&["nginx", "-p", &prefix, "-c", &conf_s]);
    cmd.stdout(Stdio::null());
    let child = Child::spawn(cmd)?;
    for &p in ports {
        ns.wait_for_tcp(
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), p),
            Duration::from_secs(5),
        )?;
    }
    Ok(child)
}

/// Writes `len` bytes of a deterministic, incompressible-looking pattern to `path`.
///
/// # Errors
/// Writing failed.
pub fn write_pattern_file(path: &Path, len: usize) -> io::Result<()> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(path, data)
}
