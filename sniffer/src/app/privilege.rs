//! Least privilege: once the device and the outputs are open, the program gives up what it
//! no longer needs, before it parses a byte from the wire, as tcpdump's `-Z` does.
//!
//! - Started as root, a live capture switches to an unprivileged user (`-Z USER`, by
//!   default [`DEFAULT_USER`]): the user's groups, then its gid, then its uid, for the
//!   real, effective and saved ids alike.
//! - Whoever it started as, it keeps no capability: the bounding set is cleared where the
//!   process may (CAP_SETPCAP), then the ambient, inheritable, permitted and effective
//!   sets; and `no_new_privs` is set, so no execve can give any back.
//! - It then checks what it got, from `/proc/thread-self/status`, and that setuid(0)
//!   fails: a drop that did not happen stops the program instead of running as root.
//! - `-Z root` keeps everything. Reading capture files as root keeps everything too,
//!   unless `-Z USER` is given.
//!
//! Capabilities and `no_new_privs` belong to a thread in Linux, so the drop happens while
//! the process has one thread (it refuses otherwise): every thread started later (the
//! extractor's hasher) inherits it.
//!
//! The output directory is opened before the drop. One the program creates is given to
//! the user it switches to (as tcpdump gives its `-w` file), so that files can still be
//! created in it through the open descriptor; an existing directory must already be
//! writable by that user, which is checked right after the drop.

use std::{
    ffi::CString,
    fs::{self, File},
    io,
    os::{fd::AsFd as _, unix::fs::MetadataExt as _},
    path::{Path, PathBuf},
};

use nix::{
    errno::Errno,
    fcntl::AtFlags,
    unistd::{self, AccessFlags, Gid, Uid, User},
};
use sniffer::extract::ExtractError;

/// Whom a live capture started as root runs as, without `-Z`. `nobody` exists everywhere;
/// a dedicated user (`-Z sniffer`) is better where one can be created, since other
/// daemons may run as `nobody` too.
pub const DEFAULT_USER: &str = "nobody";

/// An account to switch to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: Uid,
    /// Its primary group.
    pub gid: Gid,
    /// Named with `-Z` (rather than the default).
    pub explicit: bool,
}

/// What the program keeps once its inputs and outputs are open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunAs {
    /// Everything (`-Z root`; root reading files without `-Z`).
    Keep,
    /// No capability; started as root, the given account's ids.
    Drop(Option<Account>),
}

/// Why the privileges could not be dropped. The program stops: it does not go on with
/// more privilege than it was asked to keep.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// A thread had started already; it would have kept its capabilities.
    #[error(
        "cannot drop privileges with {threads} threads running (a bug in sniffer: the drop \
         must come before any thread starts)"
    )]
    Threads {
        /// Threads of the process.
        threads: usize,
    },
    /// `-Z USER` without root.
    #[error("-Z {user}: only root can switch users (sniffer runs as uid {uid})")]
    NotRoot {
        /// The user asked for.
        user: String,
        /// The uid the process has.
        uid: u32,
    },
    /// A step of the drop failed.
    #[error("dropping privileges ({step}): {source}")]
    Step {
        /// The step.
        step: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The drop did not take: something is still there.
    #[error("dropping privileges did not take: {what}")]
    Kept {
        /// What is left.
        what: String,
    },
    /// The new user cannot write to the output directory.
    #[error(
        "{dir}: not writable by {user}, whom sniffer runs as once the capture is open: \
         `chown {user} {dir}`, choose another directory, or keep root with -Z root"
    )]
    NotWritable {
        /// The directory.
        dir: PathBuf,
        /// The user.
        user: String,
        /// The answer of access(2).
        #[source]
        source: io::Error,
    },
}

impl PrivilegeError {
    fn step(step: &'static str) -> impl FnOnce(Errno) -> Self {
        move |e| Self::Step {
            step,
            source: e.into(),
        }
    }
}

/// What `-Z` and the input mean, for the process as it is now.
///
/// # Errors
/// The user does not exist; [`None`] with the name that was looked up.
pub fn run_as(user: Option<&str>, live: bool) -> Result<RunAs, String> {
    let root = Uid::effective().is_root();
    let lookup = |name: &str, explicit: bool| match User::from_name(name) {
        Ok(Some(u)) => Ok(Account {
            name: u.name,
            uid: u.uid,
            gid: u.gid,
            explicit,
        }),
        _ => Err(name.to_owned()),
    };
    Ok(match user {
        Some("root") => RunAs::Keep,
        Some(name) => RunAs::Drop(Some(lookup(name, true)?)),
        None if root && live => RunAs::Drop(Some(lookup(DEFAULT_USER, false)?)),
        None if root => RunAs::Keep,
        None => RunAs::Drop(None),
    })
}

impl RunAs {
    /// The account the process will switch to: one is named and the process is root.
    pub fn switches_to(&self) -> Option<&Account> {
        match self {
            Self::Drop(Some(a)) if Uid::effective().is_root() && !a.uid.is_root() => Some(a),
            Self::Keep | Self::Drop(_) => None,
        }
    }
}

/// Opens the output directory, creating it (and its parents) if needed. A directory it
/// creates is given to the user the process will switch to, opened without following a
/// symbolic link, so that only the directory just made changes hands.
///
/// # Errors
/// The directory cannot be created, opened or handed over, or is not a directory.
pub fn open_output_dir(path: &Path, run_as: &RunAs) -> Result<File, ExtractError> {
    let err = |source| ExtractError::Dir {
        dir: path.to_owned(),
        source,
    };
    let created = match fs::create_dir(path) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).map_err(err)?;
            }
            match fs::create_dir(path) {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
                Err(e) => return Err(err(e)),
            }
        }
        Err(e) => return Err(err(e)),
    };
    let dir = if created {
        use std::os::unix::fs::OpenOptionsExt as _;
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(path)
            .map_err(err)?
    } else {
        File::open(path).map_err(err)?
    };
    let meta = dir.metadata().map_err(err)?;
    if !meta.is_dir() {
        return Err(err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        )));
    }
    if created
        && let Some(to) = run_as.switches_to()
        && meta.uid() == Uid::effective().as_raw()
    {
        unistd::fchown(dir.as_fd(), Some(to.uid), Some(to.gid)).map_err(|e| err(e.into()))?;
    }
    Ok(dir)
}

/// After the drop: the user can create files in the directory open as `dir` (the
/// descriptor is what files are created through, so the path's parents do not matter).
///
/// # Errors
/// [`PrivilegeError::NotWritable`].
pub fn check_dir(dir: &File, path: &Path, run_as: &RunAs) -> Result<(), PrivilegeError> {
    check_access(run_as, path, || {
        unistd::faccessat(
            dir.as_fd(),
            ".",
            AccessFlags::W_OK | AccessFlags::X_OK,
            AtFlags::AT_EACCESS,
        )
    })
}

/// After the drop: the user can create files in the directory at `path`, which is
/// reached by its path.
///
/// # Errors
/// [`PrivilegeError::NotWritable`].
pub fn check_path(path: &Path, run_as: &RunAs) -> Result<(), PrivilegeError> {
    check_access(run_as, path, || {
        unistd::access(path, AccessFlags::W_OK | AccessFlags::X_OK)
    })
}

fn check_access(
    run_as: &RunAs,
    path: &Path,
    access: impl FnOnce() -> nix::Result<()>,
) -> Result<(), PrivilegeError> {
    let RunAs::Drop(Some(account)) = run_as else {
        return Ok(());
    };
    if Uid::effective() != account.uid {
        return Ok(());
    }
    access().map_err(|e| PrivilegeError::NotWritable {
        dir: path.to_owned(),
        user: account.name.clone(),
        source: e.into(),
    })
}

/// Gives up what `run_as` says. Call it once everything privileged is open, before any
/// thread starts. Returns whether anything was dropped.
///
/// # Errors
/// See [`PrivilegeError`]; the program must stop then.
pub fn drop_privileges(run_as: &RunAs) -> Result<bool, PrivilegeError> {
    let account = match run_as {
        RunAs::Keep => return Ok(false),
        RunAs::Drop(account) => account.as_ref(),
    };
    let root = Uid::effective().is_root();
    if !root
        && account.is_none_or(|a| !a.explicit)
        && Caps::of_this_thread().is_ok_and(|c| c.permitted == 0 && c.ambient == 0)
    {
        // An ordinary user (no file or ambient capabilities): nothing to give up.
        return Ok(false);
    }
    let threads = threads();
    if threads != 1 {
        return Err(PrivilegeError::Threads { threads });
    }
    let switch = match account {
        Some(a) if root => Some(a),
        Some(a) if a.explicit && a.uid != Uid::effective() => {
            return Err(PrivilegeError::NotRoot {
                user: a.name.clone(),
                uid: Uid::effective().as_raw(),
            });
        }
        _ => None,
    };

    // The bounding set needs CAP_SETPCAP, which only a privileged start has.
    if caps::has_cap(None, caps::CapSet::Effective, caps::Capability::CAP_SETPCAP).unwrap_or(false)
    {
        caps::clear(None, caps::CapSet::Bounding).map_err(caps_err("bounding set"))?;
    }
    caps::clear(None, caps::CapSet::Ambient).map_err(caps_err("ambient set"))?;
    caps::clear(None, caps::CapSet::Inheritable).map_err(caps_err("inheritable set"))?;
    if let Some(to) = switch {
        let name = CString::new(to.name.as_str()).map_err(|e| PrivilegeError::Step {
            step: "user name",
            source: io::Error::other(e),
        })?;
        // glibc applies these to every thread; there is only this one anyway.
        unistd::initgroups(&name, to.gid).map_err(PrivilegeError::step("initgroups"))?;
        unistd::setresgid(to.gid, to.gid, to.gid).map_err(PrivilegeError::step("setresgid"))?;
        // Leaving uid 0 clears the permitted, effective and ambient sets.
        unistd::setresuid(to.uid, to.uid, to.uid).map_err(PrivilegeError::step("setresuid"))?;
    }
    caps::clear(None, caps::CapSet::Permitted).map_err(caps_err("permitted set"))?;
    nix::sys::prctl::set_no_new_privs().map_err(PrivilegeError::step("no_new_privs"))?;

    let caps = Caps::of_this_thread().map_err(|source| PrivilegeError::Step {
        step: "reading /proc/thread-self/status",
        source,
    })?;
    caps.check()?;
    if let Some(to) = switch {
        let ids = unistd::getresuid().map_err(PrivilegeError::step("getresuid"))?;
        let gids = unistd::getresgid().map_err(PrivilegeError::step("getresgid"))?;
        if [ids.real, ids.effective, ids.saved] != [to.uid; 3]
            || [gids.real, gids.effective, gids.saved] != [to.gid; 3]
        {
            return Err(PrivilegeError::Kept {
                what: format!("uids {ids:?}, gids {gids:?}"),
            });
        }
        if unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).is_ok() {
            return Err(PrivilegeError::Kept {
                what: "setuid(0) still works".into(),
            });
        }
    }
    log::debug!(
        "privileges dropped: uid {}, gid {}, {caps:?}",
        Uid::effective(),
        Gid::effective()
    );
    Ok(true)
}

fn caps_err(step: &'static str) -> impl FnOnce(caps::errors::CapsError) -> PrivilegeError {
    move |e| PrivilegeError::Step {
        step,
        source: io::Error::other(e.to_string()),
    }
}

/// Threads of this process (`Threads:` in `/proc/self/status`; 0 if unreadable, which
/// refuses the drop).
fn threads() -> usize {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| status_field(&s, "Threads").and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn status_field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
    })
}

/// A thread's capability sets and `no_new_privs`, as the kernel reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caps {
    /// CapInh.
    pub inheritable: u64,
    /// CapPrm.
    pub permitted: u64,
    /// CapEff.
    pub effective: u64,
    /// CapBnd.
    pub bounding: u64,
    /// CapAmb.
    pub ambient: u64,
    /// NoNewPrivs.
    pub no_new_privs: bool,
}

impl Caps {
    fn of_this_thread() -> io::Result<Self> {
        Self::parse(&fs::read_to_string("/proc/thread-self/status")?)
            .ok_or_else(|| io::Error::other("no capability lines"))
    }

    /// From the text of a `/proc/…/status` file.
    fn parse(status: &str) -> Option<Self> {
        let hex = |name| u64::from_str_radix(status_field(status, name)?, 16).ok();
        Some(Self {
            inheritable: hex("CapInh")?,
            permitted: hex("CapPrm")?,
            effective: hex("CapEff")?,
            bounding: hex("CapBnd")?,
            ambient: hex("CapAmb")?,
            no_new_privs: status_field(status, "NoNewPrivs")? == "1",
        })
    }

    /// Nothing left that could be used or regained.
    fn check(&self) -> Result<(), PrivilegeError> {
        let left = [
            ("CapInh", self.inheritable),
            ("CapPrm", self.permitted),
            ("CapEff", self.effective),
            ("CapAmb", self.ambient),
        ]
        .into_iter()
        .filter(|&(_, v)| v != 0)
        .map(|(n, v)| format!("{n} {v:016x}"))
        .chain((!self.no_new_privs).then(|| "no_new_privs unset".to_owned()))
        .collect::<Vec<_>>();
        if left.is_empty() {
            Ok(())
        } else {
            Err(PrivilegeError::Kept {
                what: left.join(", "),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tsniffer\nUmask:\t0022\nState:\tS (sleeping)\nThreads:\t2\n\
        CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n\
        CapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\n";

    #[test]
    fn issue12_status_lines_are_read_exactly() {
        assert_eq!(status_field(STATUS, "Threads"), Some("2"));
        assert_eq!(status_field(STATUS, "Thread"), None);
        let caps = Caps::parse(STATUS).unwrap();
        assert_eq!(caps.bounding, 0x1ff_ffff_ffff);
        assert!(caps.no_new_privs);
        caps.check().unwrap();
        let root = STATUS
            .replace("CapEff:\t0000000000000000", "CapEff:\t000001fffeffffff")
            .replace("NoNewPrivs:\t1", "NoNewPrivs:\t0");
        let err = Caps::parse(&root).unwrap().check().unwrap_err().to_string();
        assert!(
            err.contains("CapEff 000001fffeffffff") && err.contains("no_new_privs unset"),
            "{err}"
        );
        assert_eq!(Caps::parse("Name:\tx\n"), None);
    }

    /// `-Z root` keeps everything; a name that does not exist is refused; reading files
    /// as root keeps root unless asked.
    #[test]
    fn issue12_run_as_from_the_command_line() {
        assert_eq!(run_as(Some("root"), true), Ok(RunAs::Keep));
        assert_eq!(
            run_as(Some("no-such-user-xyz"), true),
            Err("no-such-user-xyz".to_owned())
        );
        let nobody = run_as(Some("nobody"), false).unwrap();
        let RunAs::Drop(Some(a)) = &nobody else {
            panic!("{nobody:?}")
        };
        assert!(a.explicit && !a.uid.is_root() && a.name == "nobody");
        let root = Uid::effective().is_root();
        match run_as(None, false).unwrap() {
            RunAs::Keep => assert!(root),
            RunAs::Drop(None) => assert!(!root),
            other => panic!("{other:?}"),
        }
        match run_as(None, true).unwrap() {
            RunAs::Drop(Some(a)) => assert!(root && a.name == DEFAULT_USER && !a.explicit),
            RunAs::Drop(None) => assert!(!root),
            RunAs::Keep => panic!("live capture keeps root without -Z root"),
        }
    }

    /// The drop refuses to run with a second thread alive (it could not reach it).
    #[test]
    fn issue12_drop_refuses_with_threads_running() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        let nobody = Account {
            name: "nobody".into(),
            uid: Uid::from_raw(65534),
            gid: Gid::from_raw(65534),
            explicit: true,
        };
        let e = drop_privileges(&RunAs::Drop(Some(nobody))).unwrap_err();
        assert!(
            matches!(e, PrivilegeError::Threads { threads } if threads >= 2),
            "{e:?}"
        );
        drop(tx);
        let _ = t.join();
        assert!(!drop_privileges(&RunAs::Keep).unwrap());
    }
}
