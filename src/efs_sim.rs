//! The EFS latency simulator behind `wikibot efs-sim`: a FUSE pass-through file system that
//! serves a real directory and answers every request the kernel sends only after a fixed
//! delay, as an NFS client on EFS waits one network round trip per operation. Local disks
//! hide that cost; `checks/bench efs` runs the store, dulwich and the git CLI through this.
//!
//! What it must not do: reach the Lambda bootstraps (only the `wikibot` CLI compiles this
//! module, and nothing else references `fuser`); touch the backing directory beyond what a
//! caller asks through the mount; judge the numbers (it counts and delays, nothing more).
//!
//! The model (`--model nfs`, the default): one delay per round trip the Linux NFS client
//! would make for the same system calls. FUSE's kernel side sends requests NFS does not, and
//! those are answered at once and counted as free:
//! - a LOOKUP whose thread next creates or renames onto that name, or opens what it found:
//!   NFSv4 opens by name in one OPEN (atomic open), and skips the lookup of an exclusive
//!   create's or a rename's target; the lookup is charged when the thread's next request is
//!   anything else (a lookup that is a thread's last request goes uncharged);
//! - a GETATTR for attributes the kernel was allowed to keep but dropped after a change made
//!   through this mount: NFS replies carry post-operation attributes (OPEN's included);
//! - FLUSH on close: NFS sends CLOSE without waiting, and the data already went with the
//!   WRITEs (there is no writeback cache here, so each write(2) is a WRITE).
//!
//! Every other request costs one delay, slept after the operation is done on the backing
//! directory and before the answer: lookup, getattr, setattr, readlink, mknod, mkdir, unlink,
//! rmdir, symlink, rename, link, open, create, read, write, release, fsync, opendir, readdir,
//! releasedir, fsyncdir, statfs, the xattr calls (answered "unsupported"; the kernel then
//! stops asking) and flock lock/unlock. Reads are charged (EFS needs a round trip for every
//! uncached read); what the kernel serves from its page cache costs nothing. RELEASE and
//! RELEASEDIR are sent asynchronously: counted, but nobody waits for them. Not charged at all:
//! FORGET, INTERRUPT, INIT, DESTROY, and calls fuser answers "not implemented" itself.
//! `--model every-request` charges every request the kernel sends (a pessimistic bound).
//!
//! Locks: flock(2) is served here (one delay per lock and per unlock, as NFS LOCK/LOCKU), on
//! one backing descriptor per open file description, so its semantics are flock's. A lock
//! not unlocked explicitly is dropped when RELEASE arrives, which the kernel sends
//! asynchronously after the last close: for an instant after close(2) another opener may
//! still see it held. A blocking flock is polled in its own thread and waits until granted,
//! even for a killed process. POSIX fcntl locks are left to the local kernel (not charged).
//!
//! Caching: the kernel caches entries and attributes for the TTLs given here (the `nfs`
//! preset: 3 s for files, 30 s for directories and negative lookups, page cache kept across
//! opens, and listings that carry each entry's attributes (READDIRPLUS), which the kernel
//! keeps as looked-up names, as the NFS client primes its dcache from READDIR; `none`:
//! nothing cached). Changes made to the backing directory behind the mount's
//! back are seen only when those expire, as another NFS client's would be.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

/// Which FUSE requests stand for an NFS round trip, as `--model` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Model {
    /// The round trips the Linux NFS client makes for the same system calls: FUSE's kernel
    /// side asks for some things NFS never does (see the module documentation), and those
    /// are counted as free.
    Nfs,
    /// Every request the kernel sends costs a round trip (a pessimistic bound).
    EveryRequest,
}

/// How much the kernel may cache, as `--cache` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CachePreset {
    /// As an NFS client (actimeo defaults, close-to-open): attributes and entries 3 s for
    /// files, 30 s for directories and negative lookups; page cache kept across opens.
    Nfs,
    /// Nothing cached: every lookup, stat and open goes to the file system (pessimistic).
    None,
}

impl CachePreset {
    pub fn name(self) -> &'static str {
        match self {
            CachePreset::Nfs => "nfs",
            CachePreset::None => "none",
        }
    }

    /// (file TTL, directory and negative-lookup TTL).
    pub fn ttls(self) -> (Duration, Duration) {
        match self {
            CachePreset::Nfs => (Duration::from_secs(3), Duration::from_secs(30)),
            CachePreset::None => (Duration::ZERO, Duration::ZERO),
        }
    }
}

/// What to mount, where, and how slowly.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The real directory served.
    pub backing: PathBuf,
    /// An existing, empty directory to mount on.
    pub mount: PathBuf,
    /// Slept once per request.
    pub delay: Duration,
    pub cache: CachePreset,
    /// Attribute and entry TTL for files and symlinks.
    pub file_ttl: Duration,
    /// Attribute and entry TTL for directories, and how long a name is known not to exist.
    pub dir_ttl: Duration,
    /// Threads answering requests: how many round trips may be in flight at once.
    pub threads: usize,
    pub model: Model,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(
        "no FUSE device at /dev/fuse ({0}); load the module (modprobe fuse), or give the container --device /dev/fuse"
    )]
    NoFuseDevice(io::Error),
    #[error(
        "not permitted to mount at {mount}: {reason}; run as root (mount(2) needs CAP_SYS_ADMIN), or install fuse3 for fusermount3"
    )]
    NotPermitted { mount: PathBuf, reason: String },
    #[error("--mount {0} is not empty; mounting there would hide its files")]
    MountNotEmpty(PathBuf),
    #[error("--{flag} {path}: {source}")]
    BadDirectory {
        flag: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "--mount {mount} and --backing {backing} overlap; the mount must be outside the backing directory"
    )]
    Overlap { mount: PathBuf, backing: PathBuf },
    #[error("cannot mount at {mount}: {source}")]
    Mount { mount: PathBuf, source: io::Error },
    #[error("cannot unmount {mount}: {source}")]
    Unmount { mount: PathBuf, source: io::Error },
    #[error("cannot watch for signals: {0}")]
    Signals(io::Error),
    #[error("the file system stopped: {0}")]
    Session(io::Error),
}

impl SimError {
    /// FUSE cannot be used on this machine at all (no device, or mounting not permitted), as
    /// opposed to a mistake in the arguments.
    pub fn fuse_unavailable(&self) -> bool {
        matches!(
            self,
            SimError::NoFuseDevice(_) | SimError::NotPermitted { .. }
        )
    }
}

/// Every kind of request that is charged a delay, in the order reports list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lookup,
    Getattr,
    Setattr,
    Readlink,
    Mknod,
    Mkdir,
    Unlink,
    Rmdir,
    Symlink,
    Rename,
    Link,
    Open,
    Create,
    Read,
    Write,
    Flush,
    Release,
    Fsync,
    Opendir,
    Readdir,
    Releasedir,
    Fsyncdir,
    Statfs,
    Xattr,
    Lock,
}

impl Op {
    pub const ALL: [Op; 25] = [
        Op::Lookup,
        Op::Getattr,
        Op::Setattr,
        Op::Readlink,
        Op::Mknod,
        Op::Mkdir,
        Op::Unlink,
        Op::Rmdir,
        Op::Symlink,
        Op::Rename,
        Op::Link,
        Op::Open,
        Op::Create,
        Op::Read,
        Op::Write,
        Op::Flush,
        Op::Release,
        Op::Fsync,
        Op::Opendir,
        Op::Readdir,
        Op::Releasedir,
        Op::Fsyncdir,
        Op::Statfs,
        Op::Xattr,
        Op::Lock,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Lookup => "lookup",
            Op::Getattr => "getattr",
            Op::Setattr => "setattr",
            Op::Readlink => "readlink",
            Op::Mknod => "mknod",
            Op::Mkdir => "mkdir",
            Op::Unlink => "unlink",
            Op::Rmdir => "rmdir",
            Op::Symlink => "symlink",
            Op::Rename => "rename",
            Op::Link => "link",
            Op::Open => "open",
            Op::Create => "create",
            Op::Read => "read",
            Op::Write => "write",
            Op::Flush => "flush",
            Op::Release => "release",
            Op::Fsync => "fsync",
            Op::Opendir => "opendir",
            Op::Readdir => "readdir",
            Op::Releasedir => "releasedir",
            Op::Fsyncdir => "fsyncdir",
            Op::Statfs => "statfs",
            Op::Xattr => "xattr",
            Op::Lock => "lock",
        }
    }
}

/// Delayed requests so far, by kind, and the time actually slept.
#[derive(Debug)]
pub struct Stats {
    delay: Duration,
    counts: [AtomicU64; Op::ALL.len()],
    /// Requests answered at once because NFS would not make a round trip for them.
    free: [AtomicU64; Op::ALL.len()],
    slept_ns: AtomicU64,
}

/// A copy of [`Stats`] at one moment, as `--stats` writes it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatsSnapshot {
    pub delay_ms: f64,
    /// Delayed requests of every kind.
    pub total: u64,
    /// Time slept in all; above `total × delay_ms` by the timer's overshoot.
    pub slept_ms: f64,
    /// Delayed requests by kind; kinds never seen are left out.
    pub ops: BTreeMap<&'static str, u64>,
    /// Requests answered without a delay (the `nfs` model), by kind.
    pub free: BTreeMap<&'static str, u64>,
}

impl Stats {
    fn new(delay: Duration) -> Self {
        Self {
            delay,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            free: std::array::from_fn(|_| AtomicU64::new(0)),
            slept_ns: AtomicU64::new(0),
        }
    }

    /// Counts one `op` and sleeps the delay.
    fn charge(&self, op: Op) {
        self.counts[op as usize].fetch_add(1, Ordering::Relaxed);
        if self.delay.is_zero() {
            return;
        }
        tight_timer_slack();
        let started = Instant::now();
        std::thread::sleep(self.delay);
        let slept = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.slept_ns.fetch_add(slept, Ordering::Relaxed);
    }

    /// Counts one `op` answered without a delay.
    fn count_free(&self, op: Op) {
        self.free[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let by_kind = |counts: &[AtomicU64; Op::ALL.len()]| -> BTreeMap<&'static str, u64> {
            Op::ALL
                .iter()
                .map(|&op| (op.name(), counts[op as usize].load(Ordering::Relaxed)))
                .filter(|&(_, n)| n > 0)
                .collect()
        };
        let ops = by_kind(&self.counts);
        let free = by_kind(&self.free);
        StatsSnapshot {
            delay_ms: self.delay.as_secs_f64() * 1000.0,
            total: ops.values().sum(),
            slept_ms: self.slept_ns.load(Ordering::Relaxed) as f64 / 1e6,
            ops,
            free,
        }
    }
}

impl StatsSnapshot {
    /// One line per kind, most frequent first, for people.
    pub fn report(&self) -> String {
        let mut kinds: Vec<(&str, u64)> = self.ops.iter().map(|(k, v)| (*k, *v)).collect();
        kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut text = format!(
            "{} delayed operations at {} ms each ({:.1} ms slept",
            self.total, self.delay_ms, self.slept_ms
        );
        if self.total > 0 && self.delay_ms > 0.0 {
            text += &format!(
                ", {:.3} ms per operation",
                self.slept_ms / self.total as f64
            );
        }
        text += ")";
        for (kind, n) in kinds {
            text += &format!("\n  {kind:<11}{n:>10}");
        }
        text
    }
}

/// Asks for timers as precise as the kernel can do (the default slack adds ~50 µs to a
/// sleep), once per thread.
fn tight_timer_slack() {
    thread_local! {
        static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    DONE.with(|done| {
        if !done.get() {
            // SAFETY: PR_SET_TIMERSLACK takes one integer argument and affects only the
            // calling thread; a failure leaves the default slack, which is harmless.
            unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
            done.set(true);
        }
    });
}

/// A mounted simulator, ready to serve.
pub struct Simulator {
    session: fuser::Session<PassThrough>,
    stats: Arc<Stats>,
    mount: PathBuf,
    backing: PathBuf,
}

/// Why [`Simulator::serve`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A signal asked for it and the file system was unmounted.
    Signal(&'static str),
    /// Someone else unmounted it (umount).
    UnmountedElsewhere,
    /// A second signal came while a lazily detached mount was still in use; the process
    /// should exit now (the kernel then fails the remaining calls).
    Abandoned,
}

/// SIGINT, SIGTERM and SIGUSR1, registered before mounting so that no signal can kill the
/// process between mounting and serving (which would leave a dead mount behind).
pub struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    user1: tokio::signal::unix::Signal,
}

impl Signals {
    /// Must be called inside a Tokio runtime.
    pub fn register() -> Result<Self, SimError> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).map_err(SimError::Signals)?,
            terminate: signal(SignalKind::terminate()).map_err(SimError::Signals)?,
            user1: signal(SignalKind::user_defined1()).map_err(SimError::Signals)?,
        })
    }
}

impl Simulator {
    /// Checks the arguments and the machine, then mounts `config.backing` at `config.mount`.
    /// Returns once the kernel has finished the FUSE handshake: the mount is usable.
    pub fn mount(config: &SimConfig) -> Result<Self, SimError> {
        let backing = existing_dir("backing", &config.backing)?;
        let mount = existing_dir("mount", &config.mount)?;
        if mount.starts_with(&backing) || backing.starts_with(&mount) {
            return Err(SimError::Overlap { mount, backing });
        }
        let mut entries = std::fs::read_dir(&mount).map_err(|source| SimError::BadDirectory {
            flag: "mount",
            path: mount.clone(),
            source,
        })?;
        if entries.next().is_some() {
            return Err(SimError::MountNotEmpty(mount));
        }
        if let Err(e) = std::fs::metadata("/dev/fuse") {
            return Err(SimError::NoFuseDevice(e));
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 && !fusermount_installed() {
            return Err(SimError::NotPermitted {
                mount,
                reason: "not root, and no fusermount3 to mount for an ordinary user".into(),
            });
        }

        let root = sys::open_dir(&backing).map_err(|source| SimError::BadDirectory {
            flag: "backing",
            path: backing.clone(),
            source,
        })?;
        let root_stat = sys::stat(root.as_fd()).map_err(|source| SimError::BadDirectory {
            flag: "backing",
            path: backing.clone(),
            source,
        })?;
        raise_open_file_limit();
        // Modes arrive already masked by the caller's umask; ours must not mask them again.
        // SAFETY: umask has no preconditions; this process only serves the mount.
        unsafe { libc::umask(0) };

        let stats = Arc::new(Stats::new(config.delay));
        let fs = PassThrough::new(root, &root_stat, config, stats.clone());
        let mut fuse_config = fuser::Config::default();
        fuse_config.mount_options = vec![
            MountOption::FSName(format!("efs-sim:{}", backing.display())),
            MountOption::Subtype("efs-sim".into()),
            MountOption::DefaultPermissions,
        ];
        fuse_config.n_threads = Some(config.threads.max(1));
        fuse_config.clone_fd = true;
        let session = fuser::Session::new(fs, &mount, &fuse_config).map_err(|source| {
            let permission = matches!(
                source.kind(),
                io::ErrorKind::PermissionDenied | io::ErrorKind::NotFound
            ) || source.raw_os_error() == Some(libc::EPERM);
            if permission {
                SimError::NotPermitted {
                    mount: mount.clone(),
                    reason: source.to_string(),
                }
            } else {
                SimError::Mount {
                    mount: mount.clone(),
                    source,
                }
            }
        })?;
        Ok(Self {
            session,
            stats,
            mount,
            backing,
        })
    }

    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// The mount point, canonical.
    pub fn mount_point(&self) -> &Path {
        &self.mount
    }

    /// The backing directory, canonical.
    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// Serves until SIGINT or SIGTERM (then unmounts) or until someone else unmounts.
    /// SIGUSR1 calls `on_user1` with the statistics so far.
    pub async fn serve(
        self,
        signals: &mut Signals,
        mut on_user1: impl FnMut(&Stats),
    ) -> Result<Ending, SimError> {
        let Simulator {
            mut session,
            stats,
            mount,
            ..
        } = self;
        let mut unmounter = session.unmount_callable();
        // A plain thread, not spawn_blocking: if the process must quit with the session still
        // running (Ending::Abandoned), nothing should wait for it.
        let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("efs-sim-session".into())
            .spawn(move || {
                let _ = done_tx.send(session.run());
            })
            .map_err(SimError::Session)?;
        let session_result = |r: Result<io::Result<()>, _>| match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SimError::Session(e)),
            Err(_) => Err(SimError::Session(io::Error::other(
                "the session thread ended without a result",
            ))),
        };
        let signal = loop {
            tokio::select! {
                r = &mut done_rx => {
                    session_result(r)?;
                    return Ok(Ending::UnmountedElsewhere);
                }
                _ = signals.interrupt.recv() => break "SIGINT",
                _ = signals.terminate.recv() => break "SIGTERM",
                _ = signals.user1.recv() => on_user1(&stats),
            }
        };
        if let Err(source) = unmounter.unmount() {
            if source.raw_os_error() != Some(libc::EBUSY) {
                return Err(SimError::Unmount { mount, source });
            }
            tracing::warn!(
                mount = %mount.display(),
                "the mount is busy: detached it lazily; it goes away when the last open file \
                 closes (signal again to quit now)"
            );
            sys::detach(&mount).map_err(|source| SimError::Unmount {
                mount: mount.clone(),
                source,
            })?;
        }
        loop {
            tokio::select! {
                r = &mut done_rx => {
                    session_result(r)?;
                    return Ok(Ending::Signal(signal));
                }
                _ = signals.interrupt.recv() => return Ok(Ending::Abandoned),
                _ = signals.terminate.recv() => return Ok(Ending::Abandoned),
                _ = signals.user1.recv() => on_user1(&stats),
            }
        }
    }
}

fn existing_dir(flag: &'static str, path: &Path) -> Result<PathBuf, SimError> {
    let bad = |source: io::Error| SimError::BadDirectory {
        flag,
        path: path.to_path_buf(),
        source,
    };
    let canonical = path.canonicalize().map_err(|e| {
        if e.raw_os_error() == Some(libc::ENOTCONN) {
            bad(io::Error::new(
                e.kind(),
                format!("{e} (a dead FUSE mount? umount -l {})", path.display()),
            ))
        } else {
            bad(e)
        }
    })?;
    if !canonical.is_dir() {
        return Err(bad(io::Error::other("not a directory")));
    }
    Ok(canonical)
}

fn fusermount_installed() -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths)
            .any(|dir| dir.join("fusermount3").is_file() || dir.join("fusermount").is_file())
    })
}

/// The simulator keeps one descriptor per inode the kernel remembers; a repository with many
/// loose objects needs more than the usual soft limit of 1,024.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// An inode the kernel knows: an `O_PATH` descriptor of the backing file (so renames and
/// hard links need no path bookkeeping) and how many lookups the kernel has not forgotten.
struct Node {
    fd: Arc<OwnedFd>,
    key: (u64, u64),
    lookups: u64,
}

struct Nodes {
    by_id: HashMap<u64, Node>,
    by_key: HashMap<(u64, u64), u64>,
    root_dev: u64,
    next_synthetic: u64,
}

impl Nodes {
    /// The node id for a backing file: its own inode number when it is on the backing root's
    /// device (so `stat` shows real, stable numbers), a synthetic one otherwise. Counts a
    /// lookup.
    fn register(&mut self, fd: OwnedFd, st: &libc::stat) -> u64 {
        let key = (st.st_dev, st.st_ino);
        if let Some(&id) = self.by_key.get(&key)
            && let Some(node) = self.by_id.get_mut(&id)
        {
            node.lookups += 1;
            return id;
        }
        let id = if key.0 == self.root_dev && key.1 > 1 && !self.by_id.contains_key(&key.1) {
            key.1
        } else {
            while self.by_id.contains_key(&self.next_synthetic) {
                self.next_synthetic = self.next_synthetic.wrapping_sub(1).max(2);
            }
            self.next_synthetic
        };
        self.by_id.insert(
            id,
            Node {
                fd: Arc::new(fd),
                key,
                lookups: 1,
            },
        );
        self.by_key.insert(key, id);
        id
    }

    fn forget(&mut self, id: u64, lookups: u64) {
        if id == INodeNo::ROOT.0 {
            return;
        }
        let gone = match self.by_id.get_mut(&id) {
            Some(node) => {
                node.lookups = node.lookups.saturating_sub(lookups);
                node.lookups == 0
            }
            None => false,
        };
        if gone && let Some(node) = self.by_id.remove(&id) {
            self.by_key.remove(&node.key);
        }
    }
}

/// A lookup not yet charged: the directory, the name, and the inode it found (if any).
struct OwedLookup {
    parent: u64,
    name: std::ffi::OsString,
    found: Option<u64>,
}

/// What a request does that may settle a thread's owed lookup.
#[derive(Clone, Copy)]
enum Settles<'a> {
    Nothing,
    /// Creates or renames onto this name in this directory.
    Names(INodeNo, &'a OsStr),
    /// Opens this inode.
    Opens(INodeNo),
}

enum Handle {
    File(Arc<File>),
    Dir(Arc<Vec<DirItem>>),
}

struct DirItem {
    ino: u64,
    kind: FileType,
    name: std::ffi::OsString,
}

struct PassThrough {
    nodes: Mutex<Nodes>,
    handles: Mutex<HashMap<u64, Handle>>,
    next_handle: AtomicU64,
    stats: Arc<Stats>,
    file_ttl: Duration,
    dir_ttl: Duration,
    /// FOPEN flags for files and for directories.
    file_open: FopenFlags,
    dir_open: FopenFlags,
    cache: CachePreset,
    model: Model,
    /// Until when the kernel may cache each inode's attributes, as last granted.
    attributes_granted: Mutex<HashMap<u64, Instant>>,
    /// Per calling thread: the lookup it just made, charged unless the thread's next request
    /// opens what it found, or creates or renames onto the name (NFS folds those lookups into
    /// the OPEN, or skips them for an exclusive create or a rename's target).
    owed_lookups: Mutex<HashMap<u32, OwedLookup>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PassThrough {
    fn new(root: OwnedFd, root_stat: &libc::stat, config: &SimConfig, stats: Arc<Stats>) -> Self {
        let root_key = (root_stat.st_dev, root_stat.st_ino);
        let mut nodes = Nodes {
            by_id: HashMap::new(),
            by_key: HashMap::new(),
            root_dev: root_stat.st_dev,
            next_synthetic: u64::MAX - 1,
        };
        nodes.by_id.insert(
            INodeNo::ROOT.0,
            Node {
                fd: Arc::new(root),
                key: root_key,
                lookups: 1,
            },
        );
        nodes.by_key.insert(root_key, INodeNo::ROOT.0);
        let caching = config.cache == CachePreset::Nfs;
        Self {
            nodes: Mutex::new(nodes),
            handles: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            stats,
            file_ttl: config.file_ttl,
            dir_ttl: config.dir_ttl,
            file_open: if caching {
                FopenFlags::FOPEN_KEEP_CACHE
            } else {
                FopenFlags::empty()
            },
            dir_open: if caching {
                FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_CACHE_DIR
            } else {
                FopenFlags::empty()
            },
            cache: config.cache,
            model: config.model,
            attributes_granted: Mutex::new(HashMap::new()),
            owed_lookups: Mutex::new(HashMap::new()),
        }
    }

    /// Charges `op` for the calling thread, first settling a lookup it owes: free when this
    /// request is what NFS would have folded that lookup into, one more delay otherwise.
    fn charge(&self, req: &Request, op: Op, settles: Settles<'_>) {
        let owed = lock(&self.owed_lookups).remove(&req.pid());
        if let Some(owed) = owed {
            let folded = match settles {
                Settles::Nothing => false,
                Settles::Names(parent, name) => {
                    parent.0 == owed.parent && name == owed.name.as_os_str()
                }
                Settles::Opens(ino) => owed.found == Some(ino.0),
            };
            if folded {
                self.stats.count_free(Op::Lookup);
            } else {
                self.stats.charge(Op::Lookup);
            }
        }
        self.stats.charge(op);
    }

    /// Remembers that the kernel may cache `ino`'s attributes for `ttl` from now.
    fn granted(&self, ino: u64, ttl: Duration) {
        if self.model == Model::Nfs {
            lock(&self.attributes_granted).insert(ino, Instant::now() + ttl);
        }
    }

    /// Whether the kernel asks for attributes it was allowed to keep: it dropped them after
    /// a change this client made, which NFS replies carry (post-operation attributes).
    fn still_granted(&self, ino: u64) -> bool {
        self.model == Model::Nfs
            && lock(&self.attributes_granted)
                .get(&ino)
                .is_some_and(|until| Instant::now() < *until)
    }

    fn node_fd(&self, id: INodeNo) -> Result<Arc<OwnedFd>, Errno> {
        lock(&self.nodes)
            .by_id
            .get(&id.0)
            .map(|node| node.fd.clone())
            .ok_or(Errno::ESTALE)
    }

    fn ttl(&self, kind: FileType) -> Duration {
        if kind == FileType::Directory {
            self.dir_ttl
        } else {
            self.file_ttl
        }
    }

    /// Looks `name` up in `parent` and registers it: the kernel counts one lookup for every
    /// entry we answer with.
    fn entry(&self, parent: BorrowedFd<'_>, name: &CStr) -> Result<FileAttr, Errno> {
        let fd = sys::open_path(parent, name)?;
        let st = sys::stat(fd.as_fd())?;
        let id = lock(&self.nodes).register(fd, &st);
        Ok(attr(id, &st))
    }

    fn reply_entry(&self, reply: ReplyEntry, result: Result<FileAttr, Errno>) {
        match result {
            Ok(attr) => {
                let ttl = self.ttl(attr.kind);
                self.granted(attr.ino.0, ttl);
                reply.entry_with_ttls(&ttl, &ttl, &attr, Generation(0));
            }
            Err(e) => reply.error(e),
        }
    }

    fn add_handle(&self, handle: Handle) -> FileHandle {
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(fh, handle);
        FileHandle(fh)
    }

    /// The entries `opendir` took for directory handle `fh`.
    fn listing(&self, fh: FileHandle) -> Option<Arc<Vec<DirItem>>> {
        match lock(&self.handles).get(&fh.0) {
            Some(Handle::Dir(items)) => Some(items.clone()),
            _ => None,
        }
    }

    fn file(&self, fh: FileHandle) -> Result<Arc<File>, Errno> {
        match lock(&self.handles).get(&fh.0) {
            Some(Handle::File(file)) => Ok(file.clone()),
            _ => Err(Errno::EBADF),
        }
    }

    fn read_dir(&self, id: INodeNo, fd: &OwnedFd) -> io::Result<Vec<DirItem>> {
        let parent_ino = if id == INodeNo::ROOT {
            INodeNo::ROOT.0
        } else {
            sys::stat_at(fd.as_fd(), c"..").map_or(INodeNo::ROOT.0, |st| st.st_ino)
        };
        let mut items = vec![
            DirItem {
                ino: id.0,
                kind: FileType::Directory,
                name: ".".into(),
            },
            DirItem {
                ino: parent_ino,
                kind: FileType::Directory,
                name: "..".into(),
            },
        ];
        for entry in std::fs::read_dir(sys::proc_path(fd.as_fd()))? {
            let entry = entry?;
            let kind = entry
                .file_type()
                .ok()
                .and_then(FileType::from_std)
                .unwrap_or(FileType::RegularFile);
            items.push(DirItem {
                ino: std::os::unix::fs::DirEntryExt::ino(&entry),
                kind,
                name: entry.file_name(),
            });
        }
        Ok(items)
    }

    fn set_attributes(
        &self,
        ino: INodeNo,
        fh: Option<FileHandle>,
        change: &AttrChange,
    ) -> Result<FileAttr, Errno> {
        let fd = self.node_fd(ino)?;
        let file = fh.and_then(|fh| self.file(fh).ok());
        let path = sys::proc_path(fd.as_fd());
        if let Some(mode) = change.mode {
            match &file {
                Some(file) => sys::fchmod(file.as_fd(), mode)?,
                None => sys::chmod(&path, mode)?,
            }
        }
        if change.uid.is_some() || change.gid.is_some() {
            sys::chown(fd.as_fd(), change.uid, change.gid)?;
        }
        if let Some(size) = change.size {
            match &file {
                Some(file) => file.set_len(size).map_err(Errno::from)?,
                None => sys::truncate(&path, size)?,
            }
        }
        if change.atime.is_some() || change.mtime.is_some() {
            let times = [sys::timespec(change.atime), sys::timespec(change.mtime)];
            match &file {
                Some(file) => sys::futimens(file.as_fd(), &times)?,
                None => sys::utimens(&path, &times)?,
            }
        }
        let st = sys::stat(fd.as_fd())?;
        Ok(attr(ino.0, &st))
    }
}

struct AttrChange {
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    size: Option<u64>,
    atime: Option<TimeOrNow>,
    mtime: Option<TimeOrNow>,
}

/// A name as the kernel sends it, for the *at() calls: one path component.
fn c_name(name: &OsStr) -> Result<CString, Errno> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
        return Err(Errno::EINVAL);
    }
    CString::new(bytes).map_err(|_| Errno::EINVAL)
}

fn attr(id: u64, st: &libc::stat) -> FileAttr {
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    };
    FileAttr {
        ino: INodeNo(id),
        size: u64::try_from(st.st_size).unwrap_or(0),
        blocks: u64::try_from(st.st_blocks).unwrap_or(0),
        atime: system_time(st.st_atime, st.st_atime_nsec),
        mtime: system_time(st.st_mtime, st.st_mtime_nsec),
        ctime: system_time(st.st_ctime, st.st_ctime_nsec),
        crtime: UNIX_EPOCH,
        kind,
        perm: (st.st_mode & 0o7777) as u16,
        nlink: u32::try_from(st.st_nlink).unwrap_or(u32::MAX),
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: u32::try_from(st.st_rdev).unwrap_or(0),
        blksize: u32::try_from(st.st_blksize).unwrap_or(4096),
        flags: 0,
    }
}

fn system_time(seconds: i64, nanos: i64) -> SystemTime {
    let nanos = Duration::from_nanos(u64::try_from(nanos.clamp(0, 999_999_999)).unwrap_or(0));
    let at = if seconds >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(seconds.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(seconds.unsigned_abs()))
    };
    at.and_then(|t| t.checked_add(nanos)).unwrap_or(UNIX_EPOCH)
}

/// Flags for reopening a backing file: what the kernel passed, minus what must not reach a
/// reopen through /proc (O_NOFOLLOW would refuse the magic link; creation is done already)
/// and O_DIRECT (the kernel handles direct I/O on its side; tmpfs refuses it).
fn reopen_flags(flags: i32) -> i32 {
    flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY | libc::O_NOFOLLOW | libc::O_DIRECT)
}

impl Filesystem for PassThrough {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        // flock served here (charged); names looked up in parallel, as NFS allows; O_TRUNC
        // inside OPEN, as NFSv4's OPEN does it in one round trip.
        let mut wanted = InitFlags::FUSE_FLOCK_LOCKS
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_ATOMIC_O_TRUNC;
        if self.cache == CachePreset::Nfs {
            // Drop cached pages when a refreshed mtime or size says the file changed.
            wanted |= InitFlags::FUSE_AUTO_INVAL_DATA;
            // Listings carry each entry's attributes and prime the kernel's name cache, as
            // the NFS client's READDIR (with attributes) primes its dcache.
            wanted |= InitFlags::FUSE_DO_READDIRPLUS;
        }
        let supported = config.capabilities();
        config
            .add_capabilities(wanted & supported)
            .map_err(|missing| io::Error::other(format!("kernel refused {missing:?}")))?;
        if !supported.contains(InitFlags::FUSE_FLOCK_LOCKS) {
            tracing::warn!(
                "this kernel cannot pass flock(2) to FUSE; locks stay local and are not charged"
            );
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let result = (|| {
            let parent = self.node_fd(parent)?;
            self.entry(parent.as_fd(), &c_name(name)?)
        })();
        if self.model == Model::Nfs {
            // Charged when the thread's next request shows what it was for.
            let found = result.as_ref().ok().map(|attr| attr.ino.0);
            let owed = OwedLookup {
                parent: parent.0,
                name: name.to_owned(),
                found,
            };
            if lock(&self.owed_lookups).insert(_req.pid(), owed).is_some() {
                self.stats.charge(Op::Lookup);
            }
        } else {
            self.charge(_req, Op::Lookup, Settles::Nothing);
        }
        match result {
            // A name that does not exist is remembered for the directory TTL, as NFS does.
            Err(e) if e == Errno::ENOENT && !self.dir_ttl.is_zero() => {
                let mut negative = attr(0, &empty_stat());
                negative.ino = INodeNo(0);
                reply.entry(&self.dir_ttl, &negative, Generation(0));
            }
            result => self.reply_entry(reply, result),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        lock(&self.nodes).forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let result = self
            .node_fd(ino)
            .and_then(|fd| sys::stat(fd.as_fd()).map_err(Errno::from));
        if self.still_granted(ino.0) {
            self.stats.count_free(Op::Getattr);
        } else {
            self.charge(_req, Op::Getattr, Settles::Nothing);
        }
        match result {
            Ok(st) => {
                let attr = attr(ino.0, &st);
                self.granted(ino.0, self.ttl(attr.kind));
                reply.attr(&self.ttl(attr.kind), &attr);
            }
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let change = AttrChange {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
        };
        let result = self.set_attributes(ino, fh, &change);
        self.charge(_req, Op::Setattr, Settles::Nothing);
        match result {
            Ok(attr) => reply.attr(&self.ttl(attr.kind), &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let result = self
            .node_fd(ino)
            .and_then(|fd| sys::readlink(fd.as_fd()).map_err(Errno::from));
        self.charge(_req, Op::Readlink, Settles::Nothing);
        match result {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let result = (|| {
            let parent = self.node_fd(parent)?;
            let name = c_name(name)?;
            sys::mknod(parent.as_fd(), &name, mode, rdev)?;
            self.entry(parent.as_fd(), &name)
        })();
        self.charge(_req, Op::Mknod, Settles::Names(parent, name));
        self.reply_entry(reply, result);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let result = (|| {
            let parent = self.node_fd(parent)?;
            let name = c_name(name)?;
            sys::mkdir(parent.as_fd(), &name, mode)?;
            self.entry(parent.as_fd(), &name)
        })();
        self.charge(_req, Op::Mkdir, Settles::Names(parent, name));
        self.reply_entry(reply, result);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let result = (|| {
            let parent = self.node_fd(parent)?;
            sys::unlink(parent.as_fd(), &c_name(name)?, false).map_err(Errno::from)
        })();
        self.charge(_req, Op::Unlink, Settles::Nothing);
        reply_empty(reply, result);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let result = (|| {
            let parent = self.node_fd(parent)?;
            sys::unlink(parent.as_fd(), &c_name(name)?, true).map_err(Errno::from)
        })();
        self.charge(_req, Op::Rmdir, Settles::Nothing);
        reply_empty(reply, result);
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let result = (|| {
            let parent = self.node_fd(parent)?;
            let name = c_name(link_name)?;
            let target = CString::new(target.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
            sys::symlink(&target, parent.as_fd(), &name)?;
            self.entry(parent.as_fd(), &name)
        })();
        self.charge(_req, Op::Symlink, Settles::Names(parent, link_name));
        self.reply_entry(reply, result);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let result = (|| {
            let from = self.node_fd(parent)?;
            let to = self.node_fd(newparent)?;
            sys::rename(
                from.as_fd(),
                &c_name(name)?,
                to.as_fd(),
                &c_name(newname)?,
                flags.bits(),
            )
            .map_err(Errno::from)
        })();
        self.charge(_req, Op::Rename, Settles::Names(newparent, newname));
        reply_empty(reply, result);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let result = (|| {
            let fd = self.node_fd(ino)?;
            let parent = self.node_fd(newparent)?;
            let name = c_name(newname)?;
            sys::link(fd.as_fd(), parent.as_fd(), &name)?;
            self.entry(parent.as_fd(), &name)
        })();
        self.charge(_req, Op::Link, Settles::Names(newparent, newname));
        self.reply_entry(reply, result);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let result = (|| {
            let fd = self.node_fd(ino)?;
            let file = sys::reopen(fd.as_fd(), reopen_flags(flags.0))?;
            Ok::<_, Errno>(self.add_handle(Handle::File(Arc::new(file))))
        })();
        self.charge(_req, Op::Open, Settles::Opens(ino));
        match result {
            Ok(fh) => {
                // An NFS OPEN returns the file's attributes with it.
                self.granted(ino.0, self.file_ttl);
                reply.opened(fh, self.file_open)
            }
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let result = (|| {
            let parent = self.node_fd(parent)?;
            let name = c_name(name)?;
            let flags = (flags & !(libc::O_NOCTTY | libc::O_DIRECT)) | libc::O_CREAT;
            let file = sys::create(parent.as_fd(), &name, flags, mode)?;
            let attr = self.entry(parent.as_fd(), &name)?;
            Ok::<_, Errno>((attr, self.add_handle(Handle::File(Arc::new(file)))))
        })();
        self.charge(_req, Op::Create, Settles::Names(parent, name));
        match result {
            Ok((attr, fh)) => {
                // An NFS OPEN that creates returns the new file's attributes, as any OPEN.
                self.granted(attr.ino.0, self.ttl(attr.kind));
                reply.created(
                    &self.ttl(attr.kind),
                    &attr,
                    Generation(0),
                    fh,
                    self.file_open,
                );
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let result = self.file(fh).and_then(|file| {
            let mut buffer = vec![0; size as usize];
            let mut filled = 0;
            while filled < buffer.len() {
                match file.read_at(&mut buffer[filled..], offset + filled as u64) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Errno::from(e)),
                }
            }
            buffer.truncate(filled);
            Ok(buffer)
        });
        self.charge(_req, Op::Read, Settles::Nothing);
        match result {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let result = self
            .file(fh)
            .and_then(|file| file.write_at(data, offset).map_err(Errno::from));
        self.charge(_req, Op::Write, Settles::Nothing);
        match result {
            Ok(n) => reply.written(u32::try_from(n).unwrap_or(u32::MAX)),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // NFS's CLOSE is sent without waiting, and the data went with the WRITEs (no
        // writeback cache here), so only the every-request model waits for a flush.
        if self.model == Model::Nfs {
            self.stats.count_free(Op::Flush);
        } else {
            self.charge(_req, Op::Flush, Settles::Nothing);
        }
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // Closing the backing descriptor (unless a call in flight still holds it) also drops
        // its flock, before the delay: the kernel does not wait for RELEASE.
        let handle = lock(&self.handles).remove(&fh.0);
        drop(handle);
        self.charge(_req, Op::Release, Settles::Nothing);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let result = self.file(fh).and_then(|file| {
            if datasync {
                file.sync_data()
            } else {
                file.sync_all()
            }
            .map_err(Errno::from)
        });
        self.charge(_req, Op::Fsync, Settles::Nothing);
        reply_empty(reply, result);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let result = (|| {
            let fd = self.node_fd(ino)?;
            let items = self.read_dir(ino, &fd).map_err(Errno::from)?;
            Ok::<_, Errno>(self.add_handle(Handle::Dir(Arc::new(items))))
        })();
        self.charge(_req, Op::Opendir, Settles::Opens(ino));
        match result {
            Ok(fh) => reply.opened(fh, self.dir_open),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let items = self.listing(fh);
        self.charge(_req, Op::Readdir, Settles::Nothing);
        let Some(items) = items else {
            reply.error(Errno::EBADF);
            return;
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (index, item) in items.iter().enumerate().skip(start) {
            if reply.add(INodeNo(item.ino), index as u64 + 1, item.kind, &item.name) {
                break;
            }
        }
        reply.ok();
    }

    /// A listing with each entry's attributes (the `nfs` cache preset): one round trip per
    /// request, like `readdir`, and each entry (but `.` and `..`) counts as a lookup the
    /// kernel will later forget, as a `lookup` reply does.
    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let items = self.listing(fh);
        self.charge(_req, Op::Readdir, Settles::Nothing);
        let (Some(items), Ok(dir)) = (items, self.node_fd(ino)) else {
            reply.error(Errno::EBADF);
            return;
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (index, item) in items.iter().enumerate().skip(start) {
            let next = index as u64 + 1;
            if item.name == "." || item.name == ".." {
                // The kernel takes no reference for these: no attributes, no lookup.
                let mut bare = attr(item.ino, &empty_stat());
                bare.kind = item.kind;
                if reply.add(
                    INodeNo(item.ino),
                    next,
                    &item.name,
                    &Duration::ZERO,
                    &bare,
                    Generation(0),
                ) {
                    break;
                }
                continue;
            }
            let Ok(name) = c_name(&item.name) else {
                continue;
            };
            // Gone since the listing was taken: left out, as a fresh listing would.
            let Ok(found) = self.entry(dir.as_fd(), &name) else {
                continue;
            };
            let ttl = self.ttl(found.kind);
            if reply.add(found.ino, next, &item.name, &ttl, &found, Generation(0)) {
                // Did not fit: the kernel never sees it, so it will never forget it.
                lock(&self.nodes).forget(found.ino.0, 1);
                break;
            }
            self.granted(found.ino.0, ttl);
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let handle = lock(&self.handles).remove(&fh.0);
        drop(handle);
        self.charge(_req, Op::Releasedir, Settles::Nothing);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let result = self.node_fd(ino).and_then(|fd| {
            let dir = sys::reopen(fd.as_fd(), libc::O_RDONLY | libc::O_DIRECTORY)?;
            if datasync {
                dir.sync_data()
            } else {
                dir.sync_all()
            }
            .map_err(Errno::from)
        });
        self.charge(_req, Op::Fsyncdir, Settles::Nothing);
        reply_empty(reply, result);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let result = self
            .node_fd(INodeNo::ROOT)
            .and_then(|fd| sys::statvfs(fd.as_fd()).map_err(Errno::from));
        self.charge(_req, Op::Statfs, Settles::Nothing);
        match result {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                u32::try_from(s.f_bsize).unwrap_or(4096),
                u32::try_from(s.f_namemax).unwrap_or(255),
                u32::try_from(s.f_frsize).unwrap_or(4096),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        self.charge(_req, Op::Xattr, Settles::Nothing);
        reply.error(Errno::ENOSYS);
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        self.charge(_req, Op::Xattr, Settles::Nothing);
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        self.charge(_req, Op::Xattr, Settles::Nothing);
        reply.error(Errno::ENOSYS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        self.charge(_req, Op::Xattr, Settles::Nothing);
        reply.error(Errno::ENOSYS);
    }

    /// Only flock(2) arrives here (FUSE_FLOCK_LOCKS without FUSE_POSIX_LOCKS): the lock is
    /// taken on this open file description's own backing descriptor.
    fn setlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        typ: i32,
        _pid: u32,
        sleep: bool,
        reply: ReplyEmpty,
    ) {
        let operation = match typ {
            libc::F_RDLCK => libc::LOCK_SH,
            libc::F_WRLCK => libc::LOCK_EX,
            libc::F_UNLCK => libc::LOCK_UN,
            _ => {
                self.charge(_req, Op::Lock, Settles::Nothing);
                reply.error(Errno::EINVAL);
                return;
            }
        };
        let file = match self.file(fh) {
            Ok(file) => file,
            Err(e) => {
                self.charge(_req, Op::Lock, Settles::Nothing);
                reply.error(e);
                return;
            }
        };
        let first = sys::flock(file.as_fd(), operation | libc::LOCK_NB);
        let busy = matches!(&first, Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK));
        if !(sleep && busy) {
            self.charge(_req, Op::Lock, Settles::Nothing);
            reply_empty(reply, first.map_err(Errno::from));
            return;
        }
        // A blocking lock that is held elsewhere: wait in a thread of its own, so that the
        // request threads stay free to serve the holder's unlock.
        let stats = self.stats.clone();
        let waiter = std::thread::Builder::new()
            .name("efs-sim-flock".into())
            .spawn(move || {
                let result = loop {
                    match sys::flock(file.as_fd(), operation | libc::LOCK_NB) {
                        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        other => break other,
                    }
                };
                stats.charge(Op::Lock);
                reply_empty(reply, result.map_err(Errno::from));
            });
        if let Err(e) = waiter {
            tracing::warn!(error = %e, "cannot start a thread for a blocking flock");
        }
    }
}

fn reply_empty(reply: ReplyEmpty, result: Result<(), Errno>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

fn empty_stat() -> libc::stat {
    // SAFETY: libc::stat is plain old data; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// Thin, safe wrappers over the *at() system calls the pass-through needs.
mod sys {
    use super::*;

    fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(ret)
        }
    }

    /// Takes ownership of a descriptor a successful call just returned.
    fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
        let fd = check(fd)?;
        // SAFETY: `fd` was just returned by the kernel and is owned by no one else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn path_c(path: &Path) -> io::Result<CString> {
        CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
    }

    /// `/proc/self/fd/N`: reopens what an `O_PATH` descriptor refers to.
    pub fn proc_path(fd: BorrowedFd<'_>) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
    }

    pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
        let path = path_c(path)?;
        // SAFETY: a valid C string; the result is checked.
        owned(unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })
    }

    pub fn open_path(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
        // SAFETY: a valid descriptor and C string; the result is checked.
        owned(unsafe {
            libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })
    }

    pub fn reopen(fd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<File> {
        let path = path_c(&proc_path(fd))?;
        // SAFETY: a valid C string; the result is checked.
        owned(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) }).map(File::from)
    }

    pub fn create(
        dir: BorrowedFd<'_>,
        name: &CStr,
        flags: libc::c_int,
        mode: u32,
    ) -> io::Result<File> {
        // SAFETY: a valid descriptor and C string; the result is checked.
        owned(unsafe {
            libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                flags | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        })
        .map(File::from)
    }

    pub fn stat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
        stat_flags(fd, c"", libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW)
    }

    pub fn stat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
        stat_flags(dir, name, libc::AT_SYMLINK_NOFOLLOW)
    }

    fn stat_flags(fd: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> io::Result<libc::stat> {
        let mut st = empty_stat();
        // SAFETY: a valid descriptor, C string and output struct; the result is checked.
        check(unsafe { libc::fstatat(fd.as_raw_fd(), name.as_ptr(), &mut st, flags) })?;
        Ok(st)
    }

    pub fn statvfs(fd: BorrowedFd<'_>) -> io::Result<libc::statvfs> {
        // SAFETY: libc::statvfs is plain old data; the call fills it, and is checked.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        check(unsafe { libc::fstatvfs(fd.as_raw_fd(), &mut s) })?;
        Ok(s)
    }

    pub fn readlink(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
        let mut buffer = vec![0u8; libc::PATH_MAX as usize + 1];
        // SAFETY: a valid descriptor, empty C string and a buffer of the length given.
        let n = unsafe {
            libc::readlinkat(
                fd.as_raw_fd(),
                c"".as_ptr(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
            )
        };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        buffer.truncate(n);
        Ok(buffer)
    }

    pub fn mkdir(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
        // SAFETY: a valid descriptor and C string; the result is checked.
        check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) })
            .map(drop)
    }

    pub fn mknod(dir: BorrowedFd<'_>, name: &CStr, mode: u32, rdev: u32) -> io::Result<()> {
        // SAFETY: a valid descriptor and C string; the result is checked.
        check(unsafe {
            libc::mknodat(
                dir.as_raw_fd(),
                name.as_ptr(),
                mode as libc::mode_t,
                libc::dev_t::from(rdev),
            )
        })
        .map(drop)
    }

    pub fn symlink(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
        // SAFETY: valid C strings and descriptor; the result is checked.
        check(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
    }

    pub fn unlink(dir: BorrowedFd<'_>, name: &CStr, directory: bool) -> io::Result<()> {
        let flags = if directory { libc::AT_REMOVEDIR } else { 0 };
        // SAFETY: a valid descriptor and C string; the result is checked.
        check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
    }

    pub fn rename(
        from_dir: BorrowedFd<'_>,
        from: &CStr,
        to_dir: BorrowedFd<'_>,
        to: &CStr,
        flags: u32,
    ) -> io::Result<()> {
        // SAFETY: valid descriptors and C strings; the result is checked.
        check(unsafe {
            libc::renameat2(
                from_dir.as_raw_fd(),
                from.as_ptr(),
                to_dir.as_raw_fd(),
                to.as_ptr(),
                flags,
            )
        })
        .map(drop)
    }

    /// A hard link to what `fd` (`O_PATH`) refers to, through /proc so that no
    /// CAP_DAC_READ_SEARCH is needed.
    pub fn link(fd: BorrowedFd<'_>, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
        let source = path_c(&proc_path(fd))?;
        // SAFETY: valid C strings and descriptor; the result is checked.
        check(unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                source.as_ptr(),
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        })
        .map(drop)
    }

    pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
        // SAFETY: a valid descriptor; the result is checked.
        check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) }).map(drop)
    }

    pub fn chmod(path: &Path, mode: u32) -> io::Result<()> {
        let path = path_c(path)?;
        // SAFETY: a valid C string; the result is checked.
        check(unsafe { libc::chmod(path.as_ptr(), mode as libc::mode_t) }).map(drop)
    }

    pub fn chown(fd: BorrowedFd<'_>, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        // u32::MAX is (uid_t)-1: leave unchanged.
        // SAFETY: a valid descriptor and empty C string; the result is checked.
        check(unsafe {
            libc::fchownat(
                fd.as_raw_fd(),
                c"".as_ptr(),
                uid.unwrap_or(u32::MAX),
                gid.unwrap_or(u32::MAX),
                libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            )
        })
        .map(drop)
    }

    pub fn truncate(path: &Path, size: u64) -> io::Result<()> {
        let path = path_c(path)?;
        let size =
            libc::off_t::try_from(size).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
        // SAFETY: a valid C string; the result is checked.
        check(unsafe { libc::truncate(path.as_ptr(), size) }).map(drop)
    }

    pub fn timespec(time: Option<TimeOrNow>) -> libc::timespec {
        let (tv_sec, tv_nsec) = match time {
            None => (0, libc::UTIME_OMIT),
            Some(TimeOrNow::Now) => (0, libc::UTIME_NOW),
            Some(TimeOrNow::SpecificTime(at)) => match at.duration_since(UNIX_EPOCH) {
                Ok(d) => (
                    libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
                    libc::c_long::from(d.subsec_nanos() as i32),
                ),
                Err(before) => {
                    let d = before.duration();
                    let seconds = libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX);
                    match d.subsec_nanos() {
                        0 => (-seconds, 0),
                        n => (-seconds - 1, libc::c_long::from(1_000_000_000 - n as i32)),
                    }
                }
            },
        };
        libc::timespec { tv_sec, tv_nsec }
    }

    pub fn futimens(fd: BorrowedFd<'_>, times: &[libc::timespec; 2]) -> io::Result<()> {
        // SAFETY: a valid descriptor and two timespecs; the result is checked.
        check(unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) }).map(drop)
    }

    pub fn utimens(path: &Path, times: &[libc::timespec; 2]) -> io::Result<()> {
        let path = path_c(path)?;
        // SAFETY: a valid C string and two timespecs; the result is checked.
        check(unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), 0) })
            .map(drop)
    }

    pub fn flock(fd: BorrowedFd<'_>, operation: libc::c_int) -> io::Result<()> {
        // SAFETY: a valid descriptor; the result is checked.
        check(unsafe { libc::flock(fd.as_raw_fd(), operation) }).map(drop)
    }

    /// Detaches a busy mount; the kernel finishes it when the last file closes.
    pub fn detach(mount: &Path) -> io::Result<()> {
        let path = path_c(mount)?;
        // SAFETY: a valid C string; the result is checked.
        check(unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) }).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_components() {
        for bad in ["", ".", "..", "a/b", "/"] {
            assert_eq!(c_name(OsStr::new(bad)), Err(Errno::EINVAL), "{bad:?}");
        }
        assert_eq!(c_name(OsStr::new("HEAD")).unwrap().as_bytes(), b"HEAD");
        assert_eq!(
            c_name(OsStr::from_bytes(b"nul\0inside")),
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn times_before_and_after_the_epoch_round_trip() {
        let after = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        let ts = sys::timespec(Some(TimeOrNow::SpecificTime(after)));
        assert_eq!((ts.tv_sec, ts.tv_nsec), (1_700_000_000, 5));
        assert_eq!(system_time(ts.tv_sec, ts.tv_nsec), after);
        let before = UNIX_EPOCH - Duration::new(10, 250);
        let ts = sys::timespec(Some(TimeOrNow::SpecificTime(before)));
        assert_eq!((ts.tv_sec, ts.tv_nsec), (-11, 999_999_750));
        assert_eq!(system_time(ts.tv_sec, ts.tv_nsec), before);
        // Extreme values from a corrupt inode must not panic.
        assert!(system_time(i64::MAX, i64::MAX) > UNIX_EPOCH);
        assert!(system_time(i64::MIN, -1) <= UNIX_EPOCH);
        assert_eq!(sys::timespec(None).tv_nsec, libc::UTIME_OMIT);
    }

    #[test]
    fn node_ids_are_inode_numbers_unless_they_would_collide() {
        let root = sys::open_dir(Path::new("/")).unwrap();
        let mut st = empty_stat();
        st.st_dev = 7;
        let mut nodes = Nodes {
            by_id: HashMap::new(),
            by_key: HashMap::new(),
            root_dev: 7,
            next_synthetic: u64::MAX - 1,
        };
        let fd = || root.try_clone().unwrap();
        st.st_ino = 42;
        assert_eq!(nodes.register(fd(), &st), 42);
        assert_eq!(nodes.register(fd(), &st), 42, "same file, same id");
        st.st_ino = 1;
        assert_eq!(
            nodes.register(fd(), &st),
            u64::MAX - 1,
            "1 is the mount's root"
        );
        st.st_dev = 8;
        st.st_ino = 42;
        assert_eq!(nodes.register(fd(), &st), u64::MAX - 2, "another device");
        nodes.forget(42, 1);
        assert!(nodes.by_id.contains_key(&42), "one lookup left");
        nodes.forget(42, 1);
        assert!(!nodes.by_id.contains_key(&42));
        assert!(!nodes.by_key.contains_key(&(7, 42)));
    }

    #[test]
    fn snapshot_leaves_out_unseen_kinds_and_reports_by_frequency() {
        let stats = Stats::new(Duration::ZERO);
        stats.charge(Op::Lookup);
        stats.charge(Op::Read);
        stats.charge(Op::Read);
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.total, 3);
        assert_eq!(snapshot.ops.len(), 2);
        let report = snapshot.report();
        let read = report.find("read").unwrap();
        let lookup = report.find("lookup").unwrap();
        assert!(read < lookup, "{report}");
    }
}
