//! Fault injection against the compiled `git-probe` bootstrap (issue 8): writers stalled by
//! strace at every file-system step of a write past the stale-lock age, writers SIGKILLed at
//! random points and while holding the lock, git pushes racing wikibot's writes, and
//! repositories whose HEAD names `master`. Whatever the schedule, every answer must be true:
//!
//! - a write that answered success is on the branch HEAD names: the commit it reported is the
//!   tip or an ancestor of it, so no commit reported saved was dropped;
//! - a write whose commit is on the branch never answered failure;
//! - a write lands at most once, and `git fsck --strict` finds nothing wrong;
//!
//! and a writer that dies holding the lock costs the others seconds, not the stale-lock age.
//!
//! Every write carries a unique commit message, which is how `git log` tells whether it
//! landed. The steps of a write are learnt from an strace of one write, never hard-coded, so
//! the stall tests follow the write path when it changes. strace must be able to attach to a
//! running process (ptrace: root, or `kernel.yama.ptrace_scope=0`); the tests fail saying so
//! when it cannot.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{call, call_ok, fsck_problems, git, git_probe, start};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use wikibot::lambda::emulator::{EmulatorError, FunctionSpec, RunningFunction};

const WIKI: &str = "demo";
/// The stale-lock age (seconds) the stall tests give every writer: short, so that the others
/// break a stalled writer's lock, which is where the issue's untrue answers come from.
const STALE_SECS: &str = "1";
/// How long a stalled writer stalls: past the stale age.
const STALL: Duration = Duration::from_millis(1500);
/// A write's trace with fewer file-system steps than this means strace did not see it.
const MIN_STEPS: usize = 8;
/// Stall runs at once (each in its own repository); stalls are idle time, not CPU.
const PARALLEL_STALLS: usize = 3;
/// Runs per step until A stalls at exactly that step.
const STALL_ATTEMPTS: usize = 3;
/// A generous bound on "the next write after a death gets through": far above the seconds
/// the store may take, far below the 60 s stale age and the slack of a loaded CI machine.
const RESUME_BOUND: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// Writes and what they answered

/// One write: the page, its unique commit message, and what the writer answered.
#[derive(Debug, Clone)]
struct Write {
    page: String,
    message: String,
    answer: Answer,
}

#[derive(Debug, Clone)]
enum Answer {
    /// Success, with the revision the write reported.
    Saved(String),
    /// A failure answer: `kind: message`.
    Failed(String),
    /// No answer: the writer was killed, and its commit may or may not have landed.
    Killed,
}

impl Write {
    fn saved(&self) -> bool {
        matches!(self.answer, Answer::Saved(_))
    }
}

fn write_event(page: &str, message: &str) -> Value {
    json!({
        "op": "write", "repo": WIKI, "page": page, "content": content_of(message),
        "author": {"name": "Ada Lovelace", "email": "ada@example.com"}, "message": message,
    })
}

/// Each write's content is its message, so no write is a no-op.
fn content_of(message: &str) -> String {
    format!("{message}\n")
}

fn answer_of(response: &Value) -> Answer {
    if let Some(error) = response.get("error") {
        return Answer::Failed(format!("{}: {}", error["kind"], error["message"]));
    }
    match response["result"]["revision"].as_str() {
        Some(revision) => Answer::Saved(revision.to_owned()),
        None => Answer::Failed(format!("no revision in {response}")),
    }
}

async fn write(function: &mut RunningFunction, page: &str, message: &str) -> Write {
    let response = call(function, write_event(page, message)).await;
    Write {
        page: page.to_owned(),
        message: message.to_owned(),
        answer: answer_of(&response),
    }
}

/// Writes `page` until `stop` is set or `limit` writes are made, pausing about `pace`
/// (± 50 %) between writes; returns every write in order.
async fn keep_writing(
    mut function: RunningFunction,
    page: String,
    stop: Arc<AtomicBool>,
    pace: Duration,
    limit: usize,
) -> Vec<Write> {
    let mut writes = Vec::new();
    let pace = u64::try_from(pace.as_micros()).unwrap_or(u64::MAX).max(2);
    while !stop.load(Ordering::Relaxed) && writes.len() < limit {
        let message = format!("{page} {}", writes.len() + 1);
        writes.push(write(&mut function, &page, &message).await);
        let pause = fastrand::u64(pace / 2..pace * 3 / 2);
        tokio::time::sleep(Duration::from_micros(pause)).await;
    }
    writes
}

// ---------------------------------------------------------------------------------------
// Truthfulness, judged by the git CLI

fn repository(root: &Path) -> PathBuf {
    root.join(format!("{WIKI}.git"))
}

/// The ref HEAD names (`refs/heads/main`, or `refs/heads/master` for `git init --bare`).
fn head_ref(repo: &Path) -> String {
    git(repo, &["symbolic-ref", "HEAD"]).trim().to_owned()
}

/// (commit, subject) of every commit on the branch HEAD names, newest first.
fn branch_log(repo: &Path) -> Vec<(String, String)> {
    let branch = head_ref(repo);
    if !git_status(repo, &["rev-parse", "--verify", "--quiet", &branch]) {
        return Vec::new();
    }
    git(repo, &["log", "--format=%H%x00%s", &branch])
        .lines()
        .filter_map(|line| line.split_once('\0'))
        .map(|(id, subject)| (id.to_owned(), subject.to_owned()))
        .collect()
}

fn git_status(repo: &Path, args: &[&str]) -> bool {
    Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Every way the answers in `writes` disagree with the repository, and what fsck finds.
fn untruthful(repo: &Path, writes: &[Write]) -> Vec<String> {
    let branch = head_ref(repo);
    let log = branch_log(repo);
    let mut landed: HashMap<&str, Vec<&str>> = HashMap::new();
    for (id, subject) in &log {
        landed.entry(subject).or_default().push(id);
    }
    let mut problems = Vec::new();
    for write in writes {
        let ids = landed
            .get(write.message.as_str())
            .cloned()
            .unwrap_or_default();
        let what = &write.message;
        if ids.len() > 1 {
            problems.push(format!("{what:?} landed {} times: {ids:?}", ids.len()));
        }
        match &write.answer {
            Answer::Saved(revision) if ids.is_empty() => problems.push(format!(
                "{what:?} answered success (revision {revision}) but is not on {branch}: \
                 its commit was dropped or never published"
            )),
            Answer::Saved(revision) if !ids.contains(&revision.as_str()) => {
                problems.push(format!(
                    "{what:?} answered success with revision {revision}, but its commit on \
                     {branch} is {ids:?}"
                ));
            }
            Answer::Failed(why) if !ids.is_empty() => problems.push(format!(
                "{what:?} answered failure ({why}) but its commit {ids:?} is on {branch}"
            )),
            _ => {}
        }
    }
    problems.extend(fsck_problems(repo));
    problems
}

/// A page written by one writer at a time must end with that writer's last saved content.
fn lost_updates(repo: &Path, writes: &[Write], pages: &[&str]) -> Vec<String> {
    let branch = head_ref(repo);
    let mut problems = Vec::new();
    for page in pages {
        let Some(last) = writes.iter().rfind(|w| w.page == *page && w.saved()) else {
            continue;
        };
        let spec = format!("{branch}:{page}.md");
        let content = git(repo, &["cat-file", "-p", &spec]);
        if content != content_of(&last.message) {
            problems.push(format!(
                "page {page} holds {content:?}, not its last saved write {:?}",
                last.message
            ));
        }
    }
    problems
}

fn assert_no_problems(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}: {} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Writer processes and repositories

/// A fresh writer process that has opened the wiki and read a page.
async fn ready(spec: FunctionSpec) -> RunningFunction {
    let mut function = start(spec).await;
    call_ok(&mut function, json!({"op": "init", "repo": WIKI})).await;
    call_ok(
        &mut function,
        json!({"op": "read", "repo": WIKI, "page": "Home"}),
    )
    .await;
    function
}

fn stale_after_one_second(root: &Path) -> FunctionSpec {
    sequential(git_probe(root)).env("WIKIBOT_STALE_LOCK_SECS", STALE_SECS)
}

/// A writer whose every write takes the same steps, so that steps learnt from one write
/// number another's: strace counts injections per thread, so the new objects are written one
/// after another on the calling thread instead of from several threads (they are independent
/// and written before the ref update: their order is not a schedule that matters, and the
/// kill test's other writers keep the parallel writes); and the occasional check whether the
/// repository needs maintenance, which runs after the ref update, is off.
fn sequential(spec: FunctionSpec) -> FunctionSpec {
    spec.env("WIKIBOT_PARALLEL_OBJECT_WRITES", "false")
        .env("WIKIBOT_MAINTAIN_AFTER_LOOSE_OBJECTS", "0")
}

/// A wiki with pages Home and Other in which every loose-object fan-out directory exists,
/// so that every write takes the same path through the file system (no `mkdir` when an
/// object's directory is new): the steps learnt from one write then number every copy's.
async fn make_template(root: &Path) -> PathBuf {
    let mut function = start(sequential(git_probe(root))).await;
    call_ok(&mut function, json!({"op": "init", "repo": WIKI})).await;
    for page in ["Home", "Other"] {
        call_ok(
            &mut function,
            write_event(page, &format!("template {page}")),
        )
        .await;
    }
    let repo = repository(root);
    for fanout in 0..=255u8 {
        std::fs::create_dir_all(repo.join("objects").join(format!("{fanout:02x}"))).unwrap();
    }
    repo
}

/// Copies the template wiki into `root`; returns the copy's repository.
fn copy_repository(template: &Path, root: &Path) -> PathBuf {
    std::fs::create_dir_all(root).unwrap();
    let repo = repository(root);
    let status = Command::new("cp")
        .arg("-a")
        .arg(template)
        .arg(&repo)
        .status()
        .unwrap();
    assert!(status.success(), "cp -a {}", template.display());
    repo
}

fn signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("a pid");
    // SAFETY: kill(2) touches no memory; the pid is a process this test started and has not
    // reaped, so it cannot have been reused.
    unsafe { libc::kill(pid, signal) };
}

// ---------------------------------------------------------------------------------------
// strace

/// A system call a traced thread entered, reported as soon as strace prints its entry (a
/// stalled call is reported while it stalls).
struct Entry {
    tid: u32,
    name: String,
}

/// strace attached to a running process (`strace -p`), killed (and so detached) if dropped.
struct Strace {
    pid: u32,
    child: tokio::process::Child,
    entries: mpsc::UnboundedReceiver<Entry>,
    /// Entries seen so far per (thread, system call): strace counts injections the same way.
    seen: HashMap<(u32, String), usize>,
    lines: Arc<Mutex<Vec<String>>>,
    messages: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Strace {
    /// Attaches to every thread of `pid` with `options` (filters, injections) and returns once
    /// strace says it is attached. Trace lines carry the thread id and, for descriptors, the
    /// path (`-y`).
    async fn attach(pid: u32, options: &[String]) -> Self {
        let mut child = tokio::process::Command::new("strace")
            .args([
                "-f",
                "-y",
                "-s",
                "0",
                "-o",
                "/dev/stdout",
                "-p",
                &pid.to_string(),
            ])
            .args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run strace ({e}): the fault-injection tests need it \
                     (Debian package strace; checks/run installs it)"
                )
            });
        let lines = Arc::new(Mutex::new(Vec::new()));
        let messages = Arc::new(Mutex::new(Vec::new()));
        let (entry_tx, entries) = mpsc::unbounded_channel();
        let (message_tx, mut message_rx) = mpsc::unbounded_channel();
        let readers = vec![
            tokio::spawn(read_trace(
                child.stdout.take().unwrap(),
                Arc::clone(&lines),
                entry_tx,
            )),
            tokio::spawn(read_messages(
                child.stderr.take().unwrap(),
                Arc::clone(&messages),
                message_tx,
            )),
        ];
        let attached = format!("strace: Process {pid} attached");
        let waited = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(message) = message_rx.recv().await {
                if message.starts_with(&attached) {
                    return true;
                }
            }
            false
        })
        .await;
        if waited != Ok(true) {
            panic!(
                "strace could not attach to process {pid}: {:?}. These tests inject faults \
                 with ptrace: run them as root or with kernel.yama.ptrace_scope=0",
                lock(&messages)
            );
        }
        Self {
            pid,
            child,
            entries,
            seen: HashMap::new(),
            lines,
            messages,
            readers,
        }
    }

    /// Waits until the traced process's main thread enters its `nth` call of `name` since
    /// strace attached, and returns `None`; or returns what `running` finished with, if it
    /// finished first.
    async fn wait_for_entry<T>(
        &mut self,
        name: &str,
        nth: usize,
        running: &mut JoinHandle<T>,
    ) -> Option<T> {
        loop {
            tokio::select! {
                biased;
                entry = self.entries.recv() => match entry {
                    Some(Entry { tid, name: entered }) => {
                        let count = self.seen.entry((tid, entered.clone())).or_default();
                        *count += 1;
                        if tid == self.pid && entered == name && *count == nth {
                            return None;
                        }
                    }
                    None => return Some((&mut *running).await.expect("the task ran")),
                },
                finished = &mut *running => return Some(finished.expect("the task ran")),
            }
        }
    }

    /// Detaches from a live process and returns the trace.
    async fn detach(self) -> Vec<String> {
        if let Some(id) = self.child.id() {
            signal(id, libc::SIGINT);
        }
        self.finish().await
    }

    /// Kills strace (the kernel then detaches it) and returns the trace so far. A process
    /// stalled by strace and sent SIGKILL dies only once strace lets go of it: this lets go
    /// without resuming the stalled call, which a fatal signal aborts.
    async fn kill(mut self) -> Vec<String> {
        let _ = self.child.start_kill();
        self.finish().await
    }

    /// Waits for strace to end (it does when its process dies) and returns the trace.
    async fn finish(mut self) -> Vec<String> {
        let ended = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        assert!(
            matches!(ended, Ok(Ok(_))),
            "strace did not end: {:?}",
            lock(&self.messages)
        );
        for reader in self.readers.drain(..) {
            reader.await.expect("the reader ran");
        }
        lock(&self.lines).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Collects trace lines, and reports each call's entry as soon as it is printed, once.
async fn read_trace(
    mut stream: tokio::process::ChildStdout,
    lines: Arc<Mutex<Vec<String>>>,
    entries: mpsc::UnboundedSender<Entry>,
) {
    let mut buffer = [0u8; 16 * 1024];
    let mut current = Vec::new();
    let mut announced = false;
    let announce = |line: &str, announced: &mut bool| {
        if !*announced && let Some((tid, name)) = parse_entry(line) {
            *announced = true;
            let _ = entries.send(Entry {
                tid,
                name: name.to_owned(),
            });
        }
    };
    while let Ok(read @ 1..) = stream.read(&mut buffer).await {
        for &byte in &buffer[..read] {
            if byte == b'\n' {
                let line = String::from_utf8_lossy(&current).into_owned();
                announce(&line, &mut announced);
                lock(&lines).push(line);
                current.clear();
                announced = false;
            } else {
                current.push(byte);
            }
        }
        if !current.is_empty() {
            announce(&String::from_utf8_lossy(&current), &mut announced);
        }
    }
    if !current.is_empty() {
        lock(&lines).push(String::from_utf8_lossy(&current).into_owned());
    }
}

async fn read_messages(
    stream: tokio::process::ChildStderr,
    messages: Arc<Mutex<Vec<String>>>,
    sender: mpsc::UnboundedSender<String>,
) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        lock(&messages).push(line.clone());
        let _ = sender.send(line);
    }
}

/// `1234  openat(…` → (1234, "openat"); resumed calls, signals and exits are not entries.
/// strace pads the thread id to five columns.
fn parse_entry(line: &str) -> Option<(u32, &str)> {
    let (tid, rest) = line.split_once(' ')?;
    let tid = tid.parse().ok()?;
    let rest = rest.trim_start_matches(' ');
    let name_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|&n| n > 0)?;
    rest[name_len..]
        .starts_with('(')
        .then(|| (tid, &rest[..name_len]))
}

// ---------------------------------------------------------------------------------------
// The steps of a write

/// One file-system step of a write: a system call naming a path in the repository.
#[derive(Debug, Clone)]
struct Step {
    tid: u32,
    name: String,
    /// Which call of `name` this is in its thread since strace attached (strace's count).
    nth: usize,
    /// The repository paths the call names (arguments, or descriptors' paths), relative to
    /// the repository: `refs/heads/main.lock`.
    paths: Vec<String>,
    line: String,
}

impl Step {
    fn describe(&self) -> String {
        format!("{}#{} {}", self.name, self.nth, self.paths.join(" → "))
    }

    /// What identifies the step across runs: random and content-derived names blurred.
    fn shape(&self) -> (String, usize, Vec<String>) {
        let paths = self.paths.iter().map(|p| shape(p)).collect();
        (self.name.clone(), self.nth, paths)
    }

    fn returned_ok(&self) -> bool {
        self.line
            .rsplit_once(" = ")
            .is_some_and(|(_, value)| value.starts_with(|c: char| c.is_ascii_digit()))
    }
}

/// `objects/f8/425e…` → `objects/??/*`, `objects/tmp_obj_wikibot_4ead…` → `…_*`.
fn shape(path: &str) -> String {
    let mut shaped = Vec::new();
    let mut previous = "";
    for component in path.split('/') {
        let hex = |c: char| c.is_ascii_hexdigit();
        let blurred = if previous == "objects" && component.len() == 2 && component.chars().all(hex)
        {
            "??".to_owned()
        } else {
            let mut out = String::new();
            let mut run = String::new();
            for c in component.chars().chain(std::iter::once('/')) {
                if hex(c) {
                    run.push(c);
                    continue;
                }
                out.push_str(if run.len() >= 8 { "*" } else { &run });
                run.clear();
                if c != '/' {
                    out.push(c);
                }
            }
            out
        };
        previous = component;
        shaped.push(blurred);
    }
    shaped.join("/")
}

/// The calls in `trace` that name a path in `repo`, with strace's per-thread counts.
fn steps_in(trace: &[String], repo: &Path) -> Vec<Step> {
    let prefix = repo.display().to_string();
    let mut counts: HashMap<(u32, &str), usize> = HashMap::new();
    let mut steps = Vec::new();
    for line in trace {
        let Some((tid, name)) = parse_entry(line) else {
            continue;
        };
        let nth = counts.entry((tid, name)).or_default();
        *nth += 1;
        let mut paths = Vec::new();
        let mut rest = line.as_str();
        while let Some(at) = rest.find(&prefix) {
            let after = &rest[at + prefix.len()..];
            let end = after.find(['"', '>']).unwrap_or(after.len());
            let path = &after[..end];
            if path.is_empty() || path.starts_with('/') {
                let relative = path.trim_start_matches('/');
                let relative = if relative.is_empty() { "." } else { relative };
                // A returned descriptor repeats the path it was opened with.
                if !paths.iter().any(|p| p == relative) {
                    paths.push(relative.to_owned());
                }
            }
            rest = &after[end..];
        }
        if !paths.is_empty() {
            steps.push(Step {
                tid,
                name: name.to_owned(),
                nth: *nth,
                paths,
                line: line.clone(),
            });
        }
    }
    steps
}

fn listing(steps: &[Step]) -> String {
    steps
        .iter()
        .enumerate()
        .map(|(i, step)| format!("  {i:3} {}", step.describe()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What one traced write showed.
struct Learnt {
    /// The ref HEAD names, relative to the repository like the steps' paths.
    ref_name: String,
    steps: Vec<Step>,
    /// The step that publishes the write: the last one naming the ref file itself.
    publish: usize,
    /// From the first step that touches a `*.lock` file to `publish`: the writer is taking or
    /// holding its lock throughout.
    critical: Range<usize>,
}

impl Learnt {
    /// The step that creates the ref's own lock file, and the next one that names the ref.
    fn lock_and_recheck(&self) -> (usize, usize) {
        let lock = format!("{}.lock", self.ref_name);
        let names = |i: usize, path: &str| self.steps[i].paths.iter().any(|p| p == path);
        let created = (0..self.steps.len())
            .find(|&i| names(i, &lock) && self.steps[i].returned_ok())
            .unwrap_or_else(|| {
                panic!(
                    "no step of the write creates {lock}; update this schedule to the new \
                     protocol:\n{}",
                    listing(&self.steps)
                )
            });
        let recheck = (created + 1..self.steps.len())
            .find(|&i| names(i, &self.ref_name))
            .expect("the publish step names the ref");
        (created, recheck)
    }
}

/// Traces one write by `function` (a process that has written once already, so the write is
/// warm) and learns its file-system steps.
async fn learn(
    function: &mut RunningFunction,
    repo: &Path,
    page: &str,
    message: &str,
) -> (Write, Learnt) {
    let pid = function.pid().expect("the writer runs");
    let strace = Strace::attach(pid, &[]).await;
    let written = write(function, page, message).await;
    let trace = strace.detach().await;
    assert!(written.saved(), "the traced write failed: {written:?}");
    let steps = steps_in(&trace, repo);
    assert!(
        steps.len() >= MIN_STEPS,
        "strace saw {} file-system steps in a write (at least {MIN_STEPS} expected):\n{}",
        steps.len(),
        trace.join("\n")
    );
    assert!(
        steps.iter().all(|step| step.tid == pid),
        "the write ran on threads other than the main one; strace counts injections per \
         thread, so the stall targeting must change:\n{}",
        listing(&steps)
    );
    let ref_name = head_ref(repo);
    let publish = steps
        .iter()
        .rposition(|step| step.paths.contains(&ref_name))
        .unwrap_or_else(|| panic!("no step names {ref_name}:\n{}", listing(&steps)));
    let start = steps[..=publish]
        .iter()
        .position(|step| step.paths.iter().any(|p| p.ends_with(".lock")))
        .unwrap_or_else(|| panic!("no step touches a lock file:\n{}", listing(&steps)));
    eprintln!(
        "a warm write makes {} file-system steps; the critical section is {}..={}:\n{}",
        steps.len(),
        start,
        publish,
        listing(&steps)
    );
    let learnt = Learnt {
        ref_name,
        steps,
        publish,
        critical: start..publish + 1,
    };
    (written, learnt)
}

/// strace options that stall the learnt process state's call at `step` for `delay`: a
/// process in the state the steps were learnt in makes the same calls, so strace's count of
/// that system call finds the step.
fn stall_options(step: &Step, delay: Duration) -> Vec<String> {
    vec![
        "-e".to_owned(),
        format!(
            "inject={}:delay_enter={}us:when={}",
            step.name,
            delay.as_micros(),
            step.nth
        ),
    ]
}

/// strace options that delay the calls at `targets` by `delay` in a writer whose other calls
/// may differ from the learnt write's: only calls naming the targets' paths are traced and
/// counted (`-P`). Returns the options and, per target, the (system call, count) to await.
fn path_delays(
    repo: &Path,
    steps: &[Step],
    targets: &[usize],
    delay: Duration,
) -> (Vec<String>, Vec<(String, usize)>) {
    let paths: BTreeSet<&str> = targets
        .iter()
        .map(|&i| steps[i].paths[0].as_str())
        .collect();
    let counted = |i: usize| {
        steps[..=i]
            .iter()
            .filter(|s| s.name == steps[i].name && s.paths.iter().any(|p| paths.contains(&**p)))
            .count()
    };
    let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &i in targets {
        by_name.entry(&steps[i].name).or_default().push(counted(i));
    }
    let mut options = Vec::new();
    for path in &paths {
        options.push("-P".to_owned());
        options.push(repo.join(path).display().to_string());
    }
    for (name, nths) in &by_name {
        let (first, last) = (nths[0], nths[nths.len() - 1]);
        assert_eq!(
            last + 1 - first,
            nths.len(),
            "{name}: {nths:?} are not consecutive"
        );
        let when = if first == last {
            first.to_string()
        } else {
            format!("{first}..{last}")
        };
        options.push("-e".to_owned());
        options.push(format!(
            "inject={name}:delay_enter={}us:when={when}",
            delay.as_micros()
        ));
    }
    let awaited = targets
        .iter()
        .map(|&i| (steps[i].name.clone(), counted(i)))
        .collect();
    (options, awaited)
}

/// strace options that slow every call naming one of the critical section's paths by `delay`.
fn slow_critical_section(repo: &Path, learnt: &Learnt, delay: Duration) -> Vec<String> {
    let section = &learnt.steps[learnt.critical.clone()];
    let paths: BTreeSet<&str> = section.iter().map(|s| s.paths[0].as_str()).collect();
    let names: BTreeSet<&str> = learnt
        .steps
        .iter()
        .filter(|s| s.paths.iter().any(|p| paths.contains(&**p)))
        .map(|s| s.name.as_str())
        .collect();
    let mut options = Vec::new();
    for path in paths {
        options.push("-P".to_owned());
        options.push(repo.join(path).display().to_string());
    }
    options.push("-e".to_owned());
    options.push(format!(
        "inject={}:delay_enter={}us",
        names.into_iter().collect::<Vec<_>>().join(","),
        delay.as_micros()
    ));
    options
}

/// Whether a traced writer died holding its lock: it created the lock (the critical
/// section's first step) and had neither published nor removed it when the trace ended.
fn died_holding_lock(trace: &[String], repo: &Path, learnt: &Learnt) -> bool {
    let taking = &learnt.steps[learnt.critical.start];
    let publishing = &learnt.steps[learnt.publish];
    let lock_path = &taking.paths[0];
    let mut holding = false;
    for step in steps_in(trace, repo) {
        let on_lock = step.paths.first() == Some(lock_path);
        if step.name == taking.name && on_lock && step.returned_ok() {
            holding = true;
        } else if holding
            && on_lock
            && step.returned_ok()
            && (step.name == publishing.name && step.paths == publishing.paths
                || step.name.contains("unlink"))
        {
            holding = false;
        }
    }
    holding
}

/// The template, and the steps of a warm write to its page Home learnt on a copy of it.
async fn learn_on_template(dir: &Path) -> (PathBuf, Learnt) {
    let template = make_template(&dir.join("template")).await;
    let root = dir.join("learn");
    let repo = copy_repository(&template, &root);
    let mut writer = ready(stale_after_one_second(&root)).await;
    let warm = write(&mut writer, "Home", "learn warm-up").await;
    assert!(warm.saved(), "{warm:?}");
    let (_, learnt) = learn(&mut writer, &repo, "Home", "learn").await;
    (template, learnt)
}

/// A writer in the state the steps were learnt in: fresh, with one write made (recorded).
async fn warm_writer(spec: FunctionSpec, name: &str, writes: &mut Vec<Write>) -> RunningFunction {
    let mut function = ready(spec).await;
    let warm = write(&mut function, "Home", &format!("{name} warm-up")).await;
    assert!(warm.saved(), "{warm:?}");
    writes.push(warm);
    function
}

/// Starts `function` writing `message` to `page`; the task returns the process and the write.
fn spawn_write(
    mut function: RunningFunction,
    page: &'static str,
    message: String,
) -> JoinHandle<(RunningFunction, Write)> {
    tokio::spawn(async move {
        let written = write(&mut function, page, &message).await;
        (function, written)
    })
}

/// Where the call strace delayed in `trace` was, if it delayed one.
fn delayed_step(trace: &[String], repo: &Path) -> Option<Step> {
    steps_in(trace, repo)
        .into_iter()
        .find(|step| step.line.ends_with("(DELAYED)"))
}

// ---------------------------------------------------------------------------------------
// 1. A writer stalled at every step

/// For every file-system step of a warm write (learnt from strace, so the test follows the
/// write path): writer A stalls at that step for 1.5 s, past the 1 s stale-lock age given to
/// every writer, while B writes the same page — itself stalled 1.5 s where it publishes, so
/// a lock of B's exists when A resumes — and C writes another page twice. Every answer of
/// every run must be true, and A must have stalled at exactly the intended step (a step is
/// run up to three times until it does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_stalled_at_any_step_past_the_stale_age_never_gets_an_untrue_answer() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (template, learnt) = learn_on_template(dir.path()).await;
    let shared = Arc::new((template, learnt, dir.path().to_owned()));
    let limit = Arc::new(Semaphore::new(PARALLEL_STALLS));
    let mut runs = JoinSet::new();
    for step in 0..shared.1.steps.len() {
        let shared = Arc::clone(&shared);
        let limit = Arc::clone(&limit);
        runs.spawn(async move {
            let _permit = limit.acquire_owned().await.unwrap();
            let (template, learnt, dir) = &*shared;
            // A run whose stall lands elsewhere (something outside the write, such as a
            // connection closing, shifted strace's count) is still a valid schedule: its
            // problems count, and the step is tried again.
            let mut problems = Vec::new();
            for attempt in 1..=STALL_ATTEMPTS {
                let run = stall_run(step, attempt, template, learnt, dir).await;
                problems.extend(run.problems);
                match run.missed {
                    None => return (step, (run.summary, problems)),
                    Some(missed) if attempt == STALL_ATTEMPTS => {
                        problems.push(format!("in {attempt} attempts, {missed}"));
                        return (step, (run.summary, problems));
                    }
                    Some(_) => {}
                }
            }
            unreachable!("the last attempt returns")
        });
    }
    let mut reports = BTreeMap::new();
    while let Some(report) = runs.join_next().await {
        let (step, report) = report.expect("a stall run finished");
        reports.insert(step, report);
    }
    let learnt = &shared.1;
    let mut problems = Vec::new();
    for (step, (summary, found)) in &reports {
        eprintln!(
            "step {step:3} {}: {summary}",
            learnt.steps[*step].describe()
        );
        problems.extend(found.iter().map(|p| {
            format!(
                "stalled at step {step} ({}): {p}",
                learnt.steps[*step].describe()
            )
        }));
    }
    eprintln!(
        "{} stall runs in {:.1} s",
        reports.len(),
        started.elapsed().as_secs_f64()
    );
    assert_no_problems("writers stalled at each step", &problems);
}

/// What one stall run found.
struct StallRun {
    /// The answers, one line.
    summary: String,
    /// Untrue answers, lost updates, fsck findings.
    problems: Vec<String>,
    /// Set when A did not stall at the intended step: where it stalled instead.
    missed: Option<String>,
}

async fn stall_run(
    step: usize,
    attempt: usize,
    template: &Path,
    learnt: &Learnt,
    dir: &Path,
) -> StallRun {
    let root = dir.join(format!("step-{step}-{attempt}"));
    let repo = copy_repository(template, &root);
    let spec = stale_after_one_second(&root);
    let target = &learnt.steps[step];
    let mut writes = Vec::new();

    let a = warm_writer(spec.clone(), &format!("step {step} A"), &mut writes).await;
    let mut a_trace = Strace::attach(a.pid().unwrap(), &stall_options(target, STALL)).await;
    let b = ready(spec.clone()).await;
    let (b_options, _) = path_delays(&repo, &learnt.steps, &[learnt.publish], STALL);
    let b_trace = Strace::attach(b.pid().unwrap(), &b_options).await;
    let mut c = ready(spec).await;

    let mut a_task = spawn_write(a, "Home", format!("step {step} A"));
    let finished_early = a_trace
        .wait_for_entry(&target.name, target.nth, &mut a_task)
        .await;
    let b_task = spawn_write(b, "Home", format!("step {step} B"));
    let c_task = tokio::spawn(async move {
        let mut writes = Vec::new();
        for n in 1..=2 {
            writes.push(write(&mut c, "Other", &format!("step {step} C{n}")).await);
        }
        writes
    });
    let (_a, a_write) = match finished_early {
        Some(finished) => finished,
        None => a_task.await.unwrap(),
    };
    let (_b, b_write) = b_task.await.unwrap();
    writes.extend([a_write, b_write]);
    writes.extend(c_task.await.unwrap());
    let a_lines = a_trace.detach().await;
    b_trace.detach().await;

    let mut problems = untruthful(&repo, &writes);
    problems.extend(lost_updates(&repo, &writes, &["Other"]));
    let missed = match delayed_step(&a_lines, &repo) {
        Some(delayed) if delayed.shape() == target.shape() => None,
        Some(delayed) => Some(format!(
            "A stalled at {} instead: the write path differs from the learnt one",
            delayed.describe()
        )),
        None => Some("A never reached the step: nothing was stalled".to_owned()),
    };
    let summary = writes
        .iter()
        .skip(1)
        .map(|w| match &w.answer {
            Answer::Saved(_) => format!("{} saved", w.message),
            Answer::Failed(why) => format!("{} FAILED ({why:.60})", w.message),
            Answer::Killed => format!("{} killed", w.message),
        })
        .collect::<Vec<_>>()
        .join("; ");
    StallRun {
        summary,
        problems,
        missed,
    }
}

// ---------------------------------------------------------------------------------------
// The issue's scenarios

/// Issue 8 as reported: A stalls in its final ref update (the publish step) past the 1 s
/// stale age; B breaks A's lock, takes its own and is itself slow to publish (stalled there),
/// so B's lock exists when A's late update runs; C writes another page meanwhile. Under the
/// old protocol A's late rename publishes B's lock file: A answers success for a commit that
/// is not on the branch, and B answers `internal` although its commit landed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_ref_update_never_publishes_another_writers_commit_as_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (template, learnt) = learn_on_template(dir.path()).await;
    let root = dir.path().join("run");
    let repo = copy_repository(&template, &root);
    let spec = stale_after_one_second(&root);
    let mut writes = Vec::new();

    let publish = &learnt.steps[learnt.publish];
    let a = warm_writer(spec.clone(), "A", &mut writes).await;
    let mut a_trace = Strace::attach(a.pid().unwrap(), &stall_options(publish, STALL)).await;
    let b = ready(spec.clone()).await;
    let (b_options, _) = path_delays(&repo, &learnt.steps, &[learnt.publish], STALL);
    let b_trace = Strace::attach(b.pid().unwrap(), &b_options).await;
    let mut c = ready(spec).await;

    let mut a_task = spawn_write(a, "Home", "A".to_owned());
    let early = a_trace
        .wait_for_entry(&publish.name, publish.nth, &mut a_task)
        .await;
    assert!(early.is_none(), "A never reached its publish step");
    let b_task = spawn_write(b, "Home", "B".to_owned());
    for n in 1..=2 {
        writes.push(write(&mut c, "Other", &format!("C{n}")).await);
    }
    writes.push(a_task.await.unwrap().1);
    writes.push(b_task.await.unwrap().1);
    let a_lines = a_trace.detach().await;
    let b_lines = b_trace.detach().await;
    eprintln!("answers: {writes:#?}");
    eprintln!(
        "B's publish step:\n{}",
        b_lines
            .iter()
            .filter(|l| l.contains("DELAYED"))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        delayed_step(&a_lines, &repo).is_some_and(|d| d.shape() == publish.shape()),
        "A did not stall at its publish step:\n{}",
        a_lines.join("\n")
    );
    let mut problems = untruthful(&repo, &writes);
    problems.extend(lost_updates(&repo, &writes, &["Other"]));
    assert_no_problems("a late ref update", &problems);
}

/// The issue's third-writer case: A stalls in its publish step past the stale age; C breaks
/// A's lock and saves a commit; B, which read the tip before C's commit, is stalled while
/// creating its lock and again before it re-checks the ref, so that A's late update runs
/// while B's lock (a commit built on the older tip) exists. Under the old protocol the late
/// rename publishes B's commit and drops C's, which C was told was saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_ref_update_never_drops_a_commit_reported_saved() {
    let dir = tempfile::tempdir().unwrap();
    let (template, learnt) = learn_on_template(dir.path()).await;
    let root = dir.path().join("run");
    let repo = copy_repository(&template, &root);
    let spec = stale_after_one_second(&root);
    let mut writes = Vec::new();

    let publish = &learnt.steps[learnt.publish];
    let a = warm_writer(spec.clone(), "A", &mut writes).await;
    let a_stall = Duration::from_millis(1700);
    let mut a_trace = Strace::attach(a.pid().unwrap(), &stall_options(publish, a_stall)).await;
    let b = ready(spec.clone()).await;
    let (lock, recheck) = learnt.lock_and_recheck();
    let (b_options, _) = path_delays(
        &repo,
        &learnt.steps,
        &[lock, recheck],
        Duration::from_millis(1400),
    );
    let b_trace = Strace::attach(b.pid().unwrap(), &b_options).await;
    let mut c = ready(spec).await;

    let mut a_task = spawn_write(a, "Home", "A".to_owned());
    let early = a_trace
        .wait_for_entry(&publish.name, publish.nth, &mut a_task)
        .await;
    assert!(early.is_none(), "A never reached its publish step");
    let b_task = spawn_write(b, "Home", "B".to_owned());
    writes.push(write(&mut c, "Other", "C").await);
    writes.push(a_task.await.unwrap().1);
    writes.push(b_task.await.unwrap().1);
    let a_lines = a_trace.detach().await;
    b_trace.detach().await;
    eprintln!("answers: {writes:#?}");
    assert!(
        delayed_step(&a_lines, &repo).is_some_and(|d| d.shape() == publish.shape()),
        "A did not stall at its publish step:\n{}",
        a_lines.join("\n")
    );
    let mut problems = untruthful(&repo, &writes);
    problems.extend(lost_updates(&repo, &writes, &["Other"]));
    assert_no_problems("a late ref update with a third writer", &problems);
}

// ---------------------------------------------------------------------------------------
// 2. Writers killed at random points

#[derive(Clone, Copy, Debug)]
enum Kill {
    /// A random moment of a write of a large page (no tracing).
    Random,
    /// A random moment of a write whose lock and ref calls strace slows by a few ms each, so
    /// that many kills land in the critical section.
    SlowedCriticalSection,
    /// While stalled by strace at this critical-section step: a dead writer holding the lock.
    Stalled(usize),
}

/// With DEFAULT settings (60 s stale age, 10 s budget): over 100 writers are SIGKILLed at
/// random moments of their write — half of them with their critical section slowed so that
/// many die holding the lock — and one at every critical-section step that names a fixed
/// path (the lock, the ref) while strace stalls it there, while two survivor processes keep
/// writing. Right after each death a fresh writer's write must succeed, well inside the stale
/// age (bound: 30 s; the time is printed); at the end every reported success is on the
/// branch, no saved page content was lost, and fsck is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_killed_at_random_points_never_block_the_wiki_or_lose_a_saved_write() {
    const RANDOM_KILLS: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let repo = repository(root);
    let spec = git_probe(root);
    let mut writes = Vec::new();

    let mut setup = start(sequential(spec.clone())).await;
    call_ok(&mut setup, json!({"op": "init", "repo": WIKI})).await;
    writes.push(write(&mut setup, "Home", "setup").await);
    let (learnt_write, learnt) = learn(&mut setup, &repo, "Home", "learn").await;
    writes.push(learnt_write);
    let slowed = slow_critical_section(&repo, &learnt, Duration::from_millis(4));
    let big_page = "wiki text ".repeat(20_000);

    // How long the two kinds of victim write take, to spread kill times over them.
    let mut calibrate = ready(spec.clone()).await;
    writes.push(write(&mut calibrate, "Victim", "calibrate warm-up").await);
    let random_write = calibrate
        .invoke(
            json!({"op": "write", "repo": WIKI, "page": "Victim", "content": big_page,
                   "author": {"name": "a", "email": "b"}, "message": "calibrate big"})
            .to_string()
            .as_bytes(),
        )
        .await
        .unwrap();
    let strace = Strace::attach(calibrate.pid().unwrap(), &slowed).await;
    let slowed_write = calibrate
        .invoke(
            write_event("Victim", "calibrate slowed")
                .to_string()
                .as_bytes(),
        )
        .await
        .unwrap();
    strace.detach().await;
    for (message, invocation) in [
        ("calibrate big", &random_write),
        ("calibrate slowed", &slowed_write),
    ] {
        writes.push(Write {
            page: "Victim".into(),
            message: message.into(),
            answer: answer_of(&invocation.json()),
        });
    }
    drop(calibrate);
    let spread = |duration: Duration| {
        let micros = u64::try_from(duration.as_micros())
            .unwrap_or(u64::MAX)
            .max(2_000);
        Duration::from_micros(fastrand::u64(500..micros * 6 / 5))
    };

    let stop = Arc::new(AtomicBool::new(false));
    let mut survivors = Vec::new();
    for n in 1..=2 {
        let function = ready(spec.clone()).await;
        survivors.push(tokio::spawn(keep_writing(
            function,
            format!("Survivor-{n}"),
            Arc::clone(&stop),
            Duration::from_millis(20),
            usize::MAX,
        )));
    }

    // strace can single out a step in a writer whose other calls differ only by a path that
    // is the same in every write (the lock, the ref), not by a random or content-derived one.
    let critical: Vec<usize> = learnt
        .critical
        .clone()
        .filter(|&i| shape(&learnt.steps[i].paths[0]) == learnt.steps[i].paths[0])
        .collect();
    assert!(
        !critical.is_empty(),
        "no critical-section step names a fixed path:\n{}",
        listing(&learnt.steps)
    );
    let mut random_kills = 0;
    let mut stalled_kills = 0;
    let mut holding_at_death = 0;
    let mut waits = Vec::new();
    let mut blocked = None;
    let started = Instant::now();
    for round in 0..400 {
        if random_kills >= RANDOM_KILLS && stalled_kills >= critical.len() {
            break;
        }
        let kind = if round % 8 == 0 && stalled_kills < critical.len() {
            Kill::Stalled(critical[stalled_kills])
        } else if round % 2 == 0 {
            Kill::Random
        } else {
            Kill::SlowedCriticalSection
        };
        // A victim stalled at a learnt step writes as the learner did, all on one thread:
        // strace holding one thread of a multi-threaded process in its delay keeps that
        // process (and its locks) alive past SIGKILL, which no real death does.
        let mut victim = match kind {
            Kill::Stalled(_) => ready(sequential(spec.clone())).await,
            _ => ready(spec.clone()).await,
        };
        // A process that has written before stages its objects in the spare files that
        // write made, and links them into place: a random kill lands in those steps too.
        if !matches!(kind, Kill::Stalled(_)) {
            writes.push(write(&mut victim, "Victim", &format!("warm-up {round}")).await);
        }
        let mut next = ready(spec.clone()).await;
        let message = format!("victim {round}");
        let pid = victim.pid().unwrap();
        let (killed, trace) = match kind {
            Kill::Random => {
                let event = json!({"op": "write", "repo": WIKI, "page": "Victim",
                    "content": format!("{message}\n{big_page}"),
                    "author": {"name": "a", "email": "b"}, "message": message});
                let timeout = spread(random_write.duration);
                let outcome = victim
                    .invoke_with_timeout(event.to_string().as_bytes(), timeout)
                    .await;
                (record_victim(&mut writes, &message, outcome), None)
            }
            Kill::SlowedCriticalSection => {
                let strace = Strace::attach(pid, &slowed).await;
                let timeout = spread(slowed_write.duration);
                let outcome = victim
                    .invoke_with_timeout(
                        write_event("Victim", &message).to_string().as_bytes(),
                        timeout,
                    )
                    .await;
                let killed = record_victim(&mut writes, &message, outcome);
                let trace = if killed {
                    strace.finish().await
                } else {
                    strace.detach().await
                };
                (killed, Some(trace))
            }
            Kill::Stalled(step) => {
                let (options, awaited) =
                    path_delays(&repo, &learnt.steps, &[step], Duration::from_secs(60));
                let mut strace = Strace::attach(pid, &options).await;
                let event = write_event("Victim", &message).to_string();
                let mut task = tokio::spawn(async move {
                    let outcome = victim.invoke(event.as_bytes()).await;
                    (victim, outcome)
                });
                let (name, nth) = &awaited[0];
                match strace.wait_for_entry(name, *nth, &mut task).await {
                    None => {
                        // Dead at that step: the stalled call never runs.
                        signal(pid, libc::SIGKILL);
                        let trace = strace.kill().await;
                        let (_, outcome) = task.await.unwrap();
                        assert!(
                            matches!(outcome, Err(EmulatorError::Exited { .. })),
                            "{outcome:?}"
                        );
                        stalled_kills += 1;
                        writes.push(Write {
                            page: "Victim".into(),
                            message: message.clone(),
                            answer: Answer::Killed,
                        });
                        (true, Some(trace))
                    }
                    Some((_, outcome)) => {
                        strace.detach().await;
                        (record_victim(&mut writes, &message, outcome), None)
                    }
                }
            }
        };
        if !killed {
            continue;
        }
        let held = trace
            .as_ref()
            .is_some_and(|trace| died_holding_lock(trace, &repo, &learnt));
        if held {
            holding_at_death += 1;
        }
        if matches!(kind, Kill::Random | Kill::SlowedCriticalSection) {
            random_kills += 1;
        }
        // Right after the death, a fresh writer's write must get through.
        let after_kill = Instant::now();
        let written = write(&mut next, "After-kill", &format!("after kill {round}")).await;
        let waited = after_kill.elapsed();
        waits.push(waited);
        let on_time = written.saved() && waited < RESUME_BOUND;
        if !on_time {
            blocked = Some(format!(
                "round {round} ({kind:?}{}): the first write after the kill answered {:?} \
                 after {:.1} s",
                if held { ", died holding the lock" } else { "" },
                written.answer,
                waited.as_secs_f64()
            ));
        }
        writes.push(written);
        if blocked.is_some() {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for survivor in survivors {
        writes.extend(survivor.await.unwrap());
    }
    let mut last = ready(spec).await;
    let final_write = write(&mut last, "After-kill", "final").await;
    writes.push(final_write);

    waits.sort();
    eprintln!(
        "{random_kills} random kills and {stalled_kills} stalled kills in {:.1} s; {holding_at_death} \
         traced victims died holding the lock; kill → next write: median {:?}, max {:?}; \
         {} survivor writes, {} failed",
        started.elapsed().as_secs_f64(),
        waits.get(waits.len() / 2),
        waits.last(),
        writes
            .iter()
            .filter(|w| w.page.starts_with("Survivor"))
            .count(),
        writes
            .iter()
            .filter(|w| w.page.starts_with("Survivor") && !w.saved())
            .count(),
    );
    let mut problems: Vec<String> = blocked.into_iter().collect();
    problems.extend(untruthful(&repo, &writes));
    problems.extend(lost_updates(
        &repo,
        &writes,
        &["Survivor-1", "Survivor-2", "After-kill"],
    ));
    assert_no_problems("writers killed at random points", &problems);
    assert!(
        random_kills >= RANDOM_KILLS,
        "only {random_kills} random kills"
    );
    assert_eq!(
        stalled_kills,
        critical.len(),
        "a victim was not stalled at every critical-section step"
    );
    assert!(
        writes.last().is_some_and(Write::saved),
        "{:?}",
        writes.last()
    );
}

/// Records a victim's answer; returns whether it was killed.
fn record_victim(
    writes: &mut Vec<Write>,
    message: &str,
    outcome: Result<wikibot::lambda::emulator::Invocation, EmulatorError>,
) -> bool {
    let (answer, killed) = match outcome {
        Ok(invocation) => (answer_of(&invocation.json()), false),
        Err(EmulatorError::Timeout { .. }) => (Answer::Killed, true),
        Err(other) => panic!("victim {message}: {other}"),
    };
    writes.push(Write {
        page: "Victim".into(),
        message: message.to_owned(),
        answer,
    });
    killed
}

// ---------------------------------------------------------------------------------------
// 3. HEAD on master

/// Runs the git CLI in `dir`, isolated from the machine's configuration; panics on failure.
fn git_in(dir: &Path, args: &[&str]) -> String {
    let output = git_command(dir, args);
    assert!(
        output.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn git_command(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Grace Hopper")
        .env("GIT_AUTHOR_EMAIL", "grace@example.com")
        .env("GIT_COMMITTER_NAME", "Grace Hopper")
        .env("GIT_COMMITTER_EMAIL", "grace@example.com")
        .output()
        .expect("the git CLI is installed")
}

/// A bare repository made by `git init --bare` with HEAD on `master`.
fn git_init_bare_master(root: &Path) -> PathBuf {
    std::fs::create_dir_all(root).unwrap();
    let repo = repository(root);
    git_in(
        root,
        &[
            "init",
            "--bare",
            "--initial-branch=master",
            &format!("{WIKI}.git"),
        ],
    );
    repo
}

/// `git init --bare` points HEAD at `master`: wikibot writes that branch, creates no other,
/// and `git log` (HEAD) and a clone show its pages.
#[tokio::test]
async fn a_repository_made_by_git_init_bare_is_written_on_the_branch_head_names() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_init_bare_master(dir.path());
    let mut function = start(git_probe(dir.path())).await;
    let init = call_ok(&mut function, json!({"op": "init", "repo": WIKI})).await;
    assert_eq!(init["result"]["created"], false, "{init}");
    let mut writes = Vec::new();
    for (page, message) in [
        ("Home", "first"),
        ("Dev/Notes", "notes"),
        ("Home", "second"),
    ] {
        writes.push(write(&mut function, page, message).await);
    }
    assert!(writes.iter().all(Write::saved), "{writes:?}");

    assert_eq!(head_ref(&repo), "refs/heads/master");
    let log = git(&repo, &["log", "--format=%s"]);
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        ["second", "notes", "first"]
    );
    let heads = git(
        &repo,
        &["for-each-ref", "--format=%(refname)", "refs/heads"],
    );
    assert_eq!(heads.trim(), "refs/heads/master", "no other branch");
    assert_no_problems("on master", &untruthful(&repo, &writes));

    let clone = dir.path().join("clone");
    git_in(
        dir.path(),
        &["clone", "--quiet", &repo.display().to_string(), "clone"],
    );
    assert_eq!(
        std::fs::read_to_string(clone.join("Home.md")).unwrap(),
        "second\n"
    );
    assert_eq!(
        std::fs::read_to_string(clone.join("Dev/Notes.md")).unwrap(),
        "notes\n"
    );
    let read = call_ok(
        &mut function,
        json!({"op": "read", "repo": WIKI, "page": "Home"}),
    )
    .await;
    assert_eq!(read["result"]["content"], "second\n");
}

/// History made on `master` with the git CLI (clone, commit `Home.md`, push) is read by
/// wikibot, and a write continues it: one root commit, the new commit's parent is the old tip.
#[tokio::test]
async fn history_made_on_master_with_the_git_cli_is_read_and_continued() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_init_bare_master(dir.path());
    let work = dir.path().join("work");
    git_in(
        dir.path(),
        &["clone", "--quiet", &repo.display().to_string(), "work"],
    );
    std::fs::write(work.join("Home.md"), "made with git\n").unwrap();
    git_in(&work, &["add", "Home.md"]);
    git_in(&work, &["commit", "--quiet", "-m", "from the git CLI"]);
    git_in(&work, &["push", "--quiet", "origin", "master"]);
    let old_tip = git(&repo, &["rev-parse", "master"]).trim().to_owned();

    let mut function = start(git_probe(dir.path())).await;
    let init = call_ok(&mut function, json!({"op": "init", "repo": WIKI})).await;
    assert_eq!(init["result"]["created"], false, "{init}");
    let read = call(
        &mut function,
        json!({"op": "read", "repo": WIKI, "page": "Home"}),
    )
    .await;
    assert_eq!(read["result"]["content"], "made with git\n", "{read}");
    assert_eq!(read["result"]["revision"], old_tip.as_str(), "{read}");
    let written = write(&mut function, "Home", "from wikibot").await;
    let Answer::Saved(revision) = &written.answer else {
        panic!("{written:?}");
    };

    assert_eq!(head_ref(&repo), "refs/heads/master");
    assert_eq!(git(&repo, &["rev-parse", "master"]).trim(), revision);
    assert_eq!(
        git(&repo, &["rev-parse", &format!("{revision}^")]).trim(),
        old_tip
    );
    let roots = git(&repo, &["rev-list", "--max-parents=0", "master"]);
    assert_eq!(roots.lines().count(), 1, "one history: {roots}");
    git_in(&work, &["pull", "--quiet", "--ff-only", "origin", "master"]);
    assert_eq!(
        std::fs::read_to_string(work.join("Home.md")).unwrap(),
        "from wikibot\n"
    );
    assert_no_problems("continued history", &untruthful(&repo, &[written]));
}

// ---------------------------------------------------------------------------------------
// 4. git pushes racing wikibot's writes

/// A clone pushes 15 commits (each adding a file) to the branch HEAD names while three
/// wikibot processes write their own pages (25 writes each, about 200 ms apart, racing the
/// first pushes); a rejected push (the branch moved, or its lock was held) is rebased onto
/// the new tip and retried. At the end every push that succeeded and every wikibot write
/// that answered success is on the branch, each wikibot page holds its last saved content,
/// every pushed file is in the tip, and fsck is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_pushes_racing_wikibot_writes_are_all_kept() {
    const PUSHES: usize = 15;
    // Bounded, so that on a slow machine the pushes are not starved for ever.
    const WRITES_PER_WRITER: usize = 25;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let repo = repository(root);
    let spec = git_probe(root);
    let mut setup = start(spec.clone()).await;
    call_ok(&mut setup, json!({"op": "init", "repo": WIKI})).await;
    let mut writes = vec![write(&mut setup, "Home", "setup").await];
    let branch = head_ref(&repo);
    git_in(
        root,
        &["clone", "--quiet", &repo.display().to_string(), "clone"],
    );

    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for n in 1..=3 {
        let function = ready(spec.clone()).await;
        writers.push(tokio::spawn(keep_writing(
            function,
            format!("Wiki-{n}"),
            Arc::clone(&stop),
            Duration::from_millis(200),
            WRITES_PER_WRITER,
        )));
    }
    let clone = root.join("clone");
    let pushing = branch.clone();
    let pushed = tokio::task::spawn_blocking(move || push_loop(&clone, &pushing, PUSHES))
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writes.extend(writer.await.unwrap());
    }

    let retries: usize = pushed.iter().map(|p| p.attempts - 1).sum();
    eprintln!(
        "{} pushes ({retries} retried), {} wikibot writes ({} saved)",
        pushed.len(),
        writes.len(),
        writes.iter().filter(|w| w.saved()).count()
    );
    let mut problems = untruthful(&repo, &writes);
    problems.extend(lost_updates(
        &repo,
        &writes,
        &["Wiki-1", "Wiki-2", "Wiki-3"],
    ));
    let files = git(&repo, &["ls-tree", "-r", "--name-only", &branch]);
    for push in &pushed {
        if !git_status(
            &repo,
            &["merge-base", "--is-ancestor", &push.commit, &branch],
        ) {
            problems.push(format!(
                "pushed commit {} ({}) is not on {branch}",
                push.commit, push.file
            ));
        }
        if !files.lines().any(|f| f == push.file) {
            problems.push(format!("pushed file {} is not in the tip", push.file));
        }
    }
    assert_no_problems("pushes racing writes", &problems);
}

struct Pushed {
    file: String,
    commit: String,
    attempts: usize,
}

/// Commits and pushes `count` files from `clone`; a rejected push is rebased and retried.
fn push_loop(clone: &Path, branch: &str, count: usize) -> Vec<Pushed> {
    let mut pushed = Vec::new();
    for n in 0..count {
        let file = format!("pushed/{n}.md");
        std::fs::create_dir_all(clone.join("pushed")).unwrap();
        std::fs::write(clone.join(&file), format!("push {n}\n")).unwrap();
        git_in(clone, &["add", &file]);
        git_in(clone, &["commit", "--quiet", "-m", &format!("push {n}")]);
        let refspec = format!("HEAD:{branch}");
        let mut attempts = 0;
        loop {
            attempts += 1;
            let push = git_command(clone, &["push", "--quiet", "origin", &refspec]);
            if push.status.success() {
                break;
            }
            assert!(
                attempts < 200,
                "push {n} was rejected 200 times; last: {}",
                String::from_utf8_lossy(&push.stderr)
            );
            // The branch moved (a wikibot write) or its lock was held: rebase and retry.
            git_in(clone, &["fetch", "--quiet", "origin"]);
            let upstream = format!("origin/{}", branch.trim_start_matches("refs/heads/"));
            git_in(clone, &["rebase", "--quiet", &upstream]);
        }
        pushed.push(Pushed {
            file,
            commit: git_in(clone, &["rev-parse", "HEAD"]).trim().to_owned(),
            attempts,
        });
    }
    pushed
}
