//! `wikibot efs-sim`, the EFS latency simulator: what goes through the mount is what the
//! backing directory holds, renames, links, symlinks, times and flock behave as on a local
//! file system, git keeps a clean repository through it, and the delay is really applied.
//!
//! Mounting needs /dev/fuse and permission to mount (root, as in CI). Where either is
//! missing each test says so on stderr and returns; any other failure to mount fails.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

/// Exit status of `wikibot efs-sim` when FUSE cannot be used here.
const FUSE_UNAVAILABLE: i32 = 3;

struct Mount {
    child: Option<Child>,
    backing: PathBuf,
    mount: PathBuf,
    stats: PathBuf,
    // Removed only after the file system is unmounted (Drop below runs first), or handed
    // to the Report.
    dir: Option<tempfile::TempDir>,
}

/// What the simulator reported when it stopped.
struct Report {
    stats: Value,
    stderr: String,
    /// The backing directory's parent, kept for checks after unmounting.
    _dir: Option<tempfile::TempDir>,
}

impl Mount {
    /// Mounts an empty backing directory with `args` (e.g. --delay-ms 0), or returns `None`
    /// after saying why when FUSE is not available on this machine.
    fn start(test: &str, args: &[&str]) -> Option<Self> {
        if !Path::new("/dev/fuse").exists() {
            eprintln!("SKIPPED {test}: no /dev/fuse on this machine");
            return None;
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        let backing = dir.path().join("backing");
        let mount = dir.path().join("mount");
        let stats = dir.path().join("stats.json");
        fs::create_dir(&backing).unwrap();
        fs::create_dir(&mount).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_wikibot"))
            .arg("efs-sim")
            .arg("--backing")
            .arg(&backing)
            .arg("--mount")
            .arg(&mount)
            .arg("--stats")
            .arg(&stats)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wikibot runs");
        // The first line on stdout says the mount is ready; EOF means the process ended.
        let stdout = child.stdout.take().expect("piped stdout");
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = ready_tx.send(line);
        });
        // A guard against a hang, not a measurement.
        let line = ready_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("efs-sim neither mounted nor exited within 60 s");
        if line.starts_with("efs-sim:") {
            return Some(Self {
                child: Some(child),
                backing,
                mount,
                stats,
                dir: Some(dir),
            });
        }
        let status = child.wait().expect("wait for efs-sim");
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        if status.code() == Some(FUSE_UNAVAILABLE) {
            eprintln!(
                "SKIPPED {test}: FUSE is not available here: {}",
                stderr.trim()
            );
            return None;
        }
        panic!("efs-sim failed to mount ({status}): {stderr}");
    }

    fn m(&self, name: &str) -> PathBuf {
        self.mount.join(name)
    }

    fn b(&self, name: &str) -> PathBuf {
        self.backing.join(name)
    }

    /// SIGTERM, then what it printed and wrote on the way out.
    fn stop(mut self) -> Report {
        let child = self.child.take().expect("running");
        terminate(&child);
        let output = child.wait_with_output().expect("efs-sim exits");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "efs-sim exit: {stderr}");
        assert!(stderr.contains("unmounted"), "{stderr}");
        assert!(!is_mounted(&self.mount), "still mounted after SIGTERM");
        let stats = serde_json::from_slice(&fs::read(&self.stats).expect("--stats written"))
            .expect("--stats is JSON");
        Report {
            stats,
            stderr,
            _dir: self.dir.take(),
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&child);
            let _ = child.wait();
        }
        if is_mounted(&self.mount) {
            // A failed test must not leave a mount behind for the temp dir's removal.
            let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        }
    }
}

fn terminate(child: &Child) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
    // SAFETY: kill(2) with a pid we spawned and have not reaped.
    unsafe { libc::kill(pid, libc::SIGTERM) };
}

fn is_mounted(path: &Path) -> bool {
    let path = path.to_string_lossy();
    fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .any(|line| line.split(' ').nth(1) == Some(path.as_ref()))
}

#[test]
fn the_mount_and_the_backing_directory_hold_the_same_files() {
    let Some(m) = Mount::start("pass-through", &["--delay-ms", "0", "--cache", "none"]) else {
        return;
    };
    // Through the mount → backing.
    fs::write(m.m("page.md"), "hello").unwrap();
    assert_eq!(fs::read_to_string(m.b("page.md")).unwrap(), "hello");
    // Backing → through the mount.
    fs::write(m.b("direct.md"), "from below").unwrap();
    assert_eq!(fs::read_to_string(m.m("direct.md")).unwrap(), "from below");

    // More than one read and one write request (the kernel splits at 128 KiB–1 MiB).
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(m.m("big.bin"), &big).unwrap();
    assert_eq!(fs::read(m.b("big.bin")).unwrap(), big);
    assert_eq!(fs::read(m.m("big.bin")).unwrap(), big);
    let mut append = OpenOptions::new()
        .append(true)
        .open(m.m("page.md"))
        .unwrap();
    append.write_all(b", again").unwrap();
    drop(append);
    assert_eq!(fs::read_to_string(m.b("page.md")).unwrap(), "hello, again");
    // Overwriting truncates (O_TRUNC travels inside OPEN).
    fs::write(m.m("direct.md"), "short").unwrap();
    assert_eq!(fs::read_to_string(m.b("direct.md")).unwrap(), "short");

    // mkdir, rename across directories, hard link, unlink, rmdir.
    fs::create_dir(m.m("Dev")).unwrap();
    assert!(m.b("Dev").is_dir());
    fs::rename(m.m("page.md"), m.m("Dev/moved.md")).unwrap();
    assert!(!m.b("page.md").exists());
    assert_eq!(
        fs::read_to_string(m.b("Dev/moved.md")).unwrap(),
        "hello, again"
    );
    fs::hard_link(m.m("Dev/moved.md"), m.m("linked.md")).unwrap();
    assert_eq!(fs::metadata(m.b("linked.md")).unwrap().nlink(), 2);
    assert_eq!(
        fs::metadata(m.m("linked.md")).unwrap().ino(),
        fs::metadata(m.m("Dev/moved.md")).unwrap().ino(),
        "two names, one inode through the mount"
    );
    fs::remove_file(m.m("Dev/moved.md")).unwrap();
    assert!(!m.b("Dev/moved.md").exists());
    assert_eq!(
        fs::read_to_string(m.m("linked.md")).unwrap(),
        "hello, again"
    );
    fs::remove_dir(m.m("Dev")).unwrap();
    assert!(!m.b("Dev").exists());
    assert_eq!(
        fs::remove_dir(m.m("missing")).unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );

    // Rename over an existing file replaces it, as git's lock-file commit does.
    fs::write(m.m("HEAD.lock"), "new").unwrap();
    fs::write(m.m("HEAD"), "old").unwrap();
    fs::rename(m.m("HEAD.lock"), m.m("HEAD")).unwrap();
    assert_eq!(fs::read_to_string(m.b("HEAD")).unwrap(), "new");
    // O_EXCL: a lock file that exists cannot be created again.
    fs::write(m.m("index.lock"), "").unwrap();
    let again = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(m.m("index.lock"));
    assert_eq!(again.unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);

    // Symlinks.
    std::os::unix::fs::symlink("linked.md", m.m("alias")).unwrap();
    assert_eq!(fs::read_link(m.b("alias")).unwrap(), Path::new("linked.md"));
    assert_eq!(fs::read_link(m.m("alias")).unwrap(), Path::new("linked.md"));
    assert_eq!(fs::read_to_string(m.m("alias")).unwrap(), "hello, again");

    // utimensat (libgit2 freshens objects this way), truncate, chmod.
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    fs::File::options()
        .write(true)
        .open(m.m("linked.md"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_eq!(
        fs::metadata(m.b("linked.md")).unwrap().modified().unwrap(),
        old
    );
    let status = Command::new("touch")
        .arg("-m")
        .arg("-d")
        .arg("@1200000000")
        .arg(m.m("direct.md"))
        .status()
        .expect("touch runs");
    assert!(status.success());
    assert_eq!(
        fs::metadata(m.b("direct.md")).unwrap().mtime(),
        1_200_000_000
    );
    File::options()
        .write(true)
        .open(m.m("big.bin"))
        .unwrap()
        .set_len(10)
        .unwrap();
    assert_eq!(fs::metadata(m.b("big.bin")).unwrap().len(), 10);
    fs::set_permissions(m.m("big.bin"), fs::Permissions::from_mode(0o444)).unwrap();
    assert_eq!(
        fs::metadata(m.b("big.bin")).unwrap().permissions().mode() & 0o777,
        0o444
    );

    // Listing.
    let mut names: Vec<String> = fs::read_dir(&m.mount)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "HEAD",
            "alias",
            "big.bin",
            "direct.md",
            "index.lock",
            "linked.md"
        ]
    );
    let report = m.stop();
    assert_eq!(report.stats["delay_ms"], 0.0);
    assert!(report.stats["ops"]["rename"].as_u64().unwrap_or(0) >= 2);
}

#[test]
fn flock_through_the_mount_excludes_other_open_files() {
    let Some(m) = Mount::start("flock", &["--delay-ms", "0"]) else {
        return;
    };
    let open = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(m.m("writer.lock"))
            .unwrap()
    };
    let (holder, other) = (open(), open());
    holder.try_lock().expect("first lock");
    assert!(
        matches!(other.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        "an exclusive flock held through one open file blocks another's try_lock"
    );
    assert!(matches!(
        other.try_lock_shared(),
        Err(std::fs::TryLockError::WouldBlock)
    ));
    holder.unlock().unwrap();
    other.try_lock().expect("free after unlock");
    other.unlock().unwrap();

    // A blocking lock waits for the holder, then gets it.
    holder.lock().unwrap();
    let waiter = std::thread::spawn(move || {
        other.lock().unwrap();
        other
    });
    std::thread::sleep(Duration::from_millis(100));
    holder.unlock().unwrap();
    let other = waiter.join().expect("the blocked lock is granted");
    other.unlock().unwrap();

    // Closing the holder's file drops its lock (RELEASE is asynchronous: poll for it).
    holder.lock().unwrap();
    drop(holder);
    let third = open();
    let deadline = Instant::now() + Duration::from_secs(30);
    while third.try_lock().is_err() {
        assert!(Instant::now() < deadline, "the lock outlived its file");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(third);
    drop(other);
    let report = m.stop();
    assert!(report.stats["ops"]["lock"].as_u64().unwrap_or(0) >= 6);
}

#[test]
fn git_keeps_a_clean_repository_through_the_mount() {
    let Some(m) = Mount::start("git", &["--delay-ms", "0"]) else {
        return;
    };
    let git = |dir: &Path, args: &[&str]| {
        let output = Command::new("git")
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .args([
                "-c",
                "user.name=Test",
                "-c",
                "user.email=test@wikibot.invalid",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .output()
            .expect("git runs (checks/run installs it)");
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    git(&m.mount, &["init", "-q", "--bare", "wiki.git"]);
    git(&m.mount, &["init", "-q", "work"]);
    let work = m.m("work");
    for n in 0..5 {
        fs::create_dir_all(work.join("Dev")).unwrap();
        fs::write(work.join(format!("Page {n}.md")), format!("# Page {n}\n")).unwrap();
        fs::write(work.join("Dev/Notes.md"), format!("notes {n}\n")).unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", &format!("Commit {n}")]);
    }
    git(&work, &["push", "-q", "../wiki.git", "main"]);
    // gc packs, renames, links and deletes loose objects through the mount.
    git(&work, &["gc", "-q", "--prune=now"]);
    git(&m.m("wiki.git"), &["fsck", "--full", "--strict"]);
    git(&work, &["fsck", "--full", "--strict"]);
    assert_eq!(
        git(&m.m("wiki.git"), &["rev-list", "--count", "main"]).trim(),
        "5"
    );
    let backing = m.b("wiki.git");
    let report = m.stop();
    assert!(
        report.stats["ops"]["link"].as_u64().unwrap_or(0) > 0
            || report.stats["ops"]["rename"].as_u64().unwrap_or(0) > 0
    );
    // And straight from the backing directory, without the mount.
    git(&backing, &["fsck", "--full", "--strict"]);
}

#[test]
fn every_operation_waits_the_delay_and_is_counted() {
    let Some(m) = Mount::start("delay", &["--delay-ms", "20", "--cache", "none"]) else {
        return;
    };
    fs::write(m.b("page.md"), "x").unwrap();
    // stat through a mount that caches nothing: at least a lookup, so at least one delay.
    let started = Instant::now();
    fs::metadata(m.m("page.md")).unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(20),
        "stat took {elapsed:?}"
    );
    let report = m.stop();
    let total = report.stats["total"].as_u64().unwrap();
    assert!(total >= 1, "{}", report.stats);
    assert!(report.stats["ops"]["lookup"].as_u64().unwrap_or(0) >= 1);
    let slept = report.stats["slept_ms"].as_f64().unwrap();
    assert!(
        slept >= 20.0 * total as f64,
        "a delay is never cut short: {}",
        report.stats
    );
    assert!(
        report.stderr.contains("delayed operations at 20 ms each"),
        "{}",
        report.stderr
    );
}

#[test]
fn refuses_a_mount_point_that_is_not_empty_or_inside_the_backing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("backing");
    let mount = dir.path().join("mount");
    fs::create_dir_all(&mount).unwrap();
    fs::create_dir_all(backing.join("inner")).unwrap();
    fs::write(mount.join("precious"), "data").unwrap();
    let run = |mount: &Path| {
        Command::new(env!("CARGO_BIN_EXE_wikibot"))
            .arg("efs-sim")
            .arg("--backing")
            .arg(&backing)
            .arg("--mount")
            .arg(mount)
            .output()
            .expect("wikibot runs")
    };
    let output = run(&mount);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not empty"), "{stderr}");
    let output = run(&backing.join("inner"));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("overlap"), "{stderr}");
    let output = run(&dir.path().join("missing"));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--mount"));
    assert_eq!(fs::read_to_string(mount.join("precious")).unwrap(), "data");
}

#[test]
fn a_stat_of_a_file_this_client_created_and_wrote_is_answered_from_the_replies() {
    const FILES: usize = 20;
    let Some(m) = Mount::start("post-op-attributes", &["--delay-ms", "0"]) else {
        return;
    };
    for n in 0..FILES {
        let mut file = fs::File::create_new(m.m(&format!("f{n}"))).unwrap();
        std::io::Write::write_all(&mut file, b"content").unwrap();
        // The write made the kernel drop the size and times it had from the create; NFS's
        // OPEN and WRITE replies carry them, so the client would not ask the server.
        assert_eq!(file.metadata().unwrap().len(), 7);
    }
    let report = m.stop();
    let charged = report.stats["ops"]["getattr"].as_u64().unwrap_or(0);
    let free = report.stats["free"]["getattr"].as_u64().unwrap_or(0);
    assert!(charged <= 1, "charged getattrs: {}", report.stats);
    assert!(free >= FILES as u64, "free getattrs: {}", report.stats);
}

/// Lookups the simulator charged, once it has stopped.
fn lookups(report: &Report) -> u64 {
    report.stats["ops"]["lookup"].as_u64().unwrap_or(0)
}

#[test]
fn a_listing_tells_the_kernel_its_entries_as_an_nfs_readdir_does() {
    const DIRS: usize = 40;
    let stat_all = |m: &Mount| {
        for n in 0..DIRS {
            fs::metadata(m.m(&format!("objects/{n:02x}"))).unwrap();
        }
    };
    let mut charged = Vec::new();
    for list_first in [true, false] {
        let Some(m) = Mount::start("readdirplus", &["--delay-ms", "0"]) else {
            return;
        };
        for n in 0..DIRS {
            fs::create_dir_all(m.b(&format!("objects/{n:02x}"))).unwrap();
        }
        if list_first {
            assert_eq!(fs::read_dir(m.m("objects")).unwrap().count(), DIRS);
        }
        stat_all(&m);
        charged.push(lookups(&m.stop()));
    }
    let (listed, unlisted) = (charged[0], charged[1]);
    // Only `objects` itself is looked up after a listing (and the last lookup of a run
    // goes uncharged); without one, every directory is.
    assert!(listed <= 2, "lookups after a listing: {listed}");
    assert!(
        unlisted >= DIRS as u64 - 1,
        "lookups without one: {unlisted}"
    );
}

#[test]
fn writes_find_the_object_directories_without_a_lookup_each() {
    use wikibot::store::{Store, StoreConfig, WikiName};
    const WRITES: usize = 40;
    let mut charged = Vec::new();
    for parallel in [true, false] {
        let Some(m) = Mount::start("object-directories", &["--delay-ms", "0"]) else {
            return;
        };
        let mut config = StoreConfig::new(&m.mount);
        config.parallel_object_writes = parallel;
        let store = Store::new(config);
        let name = WikiName::parse("w").unwrap();
        let (wiki, _) = store.init(&name).unwrap();
        // Every fan-out directory exists, made behind the mount's back as another client
        // would have: the kernel knows none of them yet.
        for n in 0..=255u8 {
            fs::create_dir_all(m.b(&format!("w.git/objects/{n:02x}"))).unwrap();
        }
        let author = wikibot::bench::bench_author();
        wikibot::bench::bench_write(&wiki, &author, 0, WRITES).unwrap();
        // The first write started the listing in the background; nothing waits for it.
        std::thread::sleep(Duration::from_millis(500));
        for n in 1..=WRITES {
            wikibot::bench::bench_write(&wiki, &author, n, WRITES).unwrap();
        }
        drop((wiki, store));
        charged.push(lookups(&m.stop()));
    }
    let (listing, not_listing) = (charged[0], charged[1]);
    // Each write makes a blob, a tree or more and a commit, in random fan-out directories.
    assert!(
        not_listing >= WRITES as u64,
        "lookups without the listing: {not_listing}"
    );
    assert!(
        listing * 4 <= not_listing,
        "lookups with the listing: {listing}, without: {not_listing}"
    );
}
