//! Measurements behind `wikibot bench` and `benches/`: a repository with a known history,
//! warm store operations in one process, and cold starts of compiled bootstraps; [`lambda`]
//! (feature `bench-lambda`) benchmarks functions through the Lambda API on the AWS SDK.
//!
//! Benchmarks report numbers; they must not assert goals (a noisy machine would make that
//! flaky). Goals are compared by people reading the output.

#[cfg(feature = "bench-lambda")]
pub mod lambda;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::lambda::emulator::{EmulatorError, FunctionSpec, RunningFunction};
use crate::store::{
    Author, Expect, PagePath, Store, StoreConfig, StoreError, Wiki, WikiName, WriteRequest,
};

/// The shape of a benchmark repository.
#[derive(Debug, Clone, Copy)]
pub struct RepoShape {
    pub commits: usize,
    pub pages: usize,
    pub page_bytes: usize,
    /// What the pages say.
    pub content: Content,
    /// Seconds between consecutive commits (the last one is now).
    pub seconds_between: u64,
}

impl Default for RepoShape {
    /// 1,000 commits over 100 pages of 4 KB: the repository the Phase 0 numbers use.
    fn default() -> Self {
        Self {
            commits: 1000,
            pages: 100,
            page_bytes: 4096,
            content: Content::Random,
            seconds_between: 1,
        }
    }
}

/// What the pages of a benchmark wiki contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Content {
    /// Random letters in words: what the store benchmarks use.
    Random,
    /// Wiki pages: YAML frontmatter (category, tags), text drawn from a vocabulary with a
    /// natural (Zipf) spread of word frequencies, WikiLinks and relative Markdown links to
    /// other pages (one in twenty to a page that does not exist).
    Wiki,
}

/// Pages per directory in a wiki of more than 100 pages, so no tree is huge (a wiki, like
/// a file system, nests).
const PAGES_PER_AREA: usize = 100;

/// The page the n-th commit of a benchmark repository touches. Up to 100 pages: half at the
/// top, half under `Dev/`; more: 100 per area directory (`Area 012/Page 01234`).
pub fn bench_page(n: usize, pages: usize) -> PagePath {
    let index = n % pages.max(1);
    let raw = if pages > PAGES_PER_AREA {
        format!("Area {:03}/Page {index:05}", index / PAGES_PER_AREA)
    } else if index.is_multiple_of(2) {
        format!("Page {index:03}")
    } else {
        format!("Dev/Notes {index:03}")
    };
    // The format above always yields a valid page path.
    PagePath::parse(&raw).unwrap_or_else(|e| unreachable!("bench page {raw:?}: {e}"))
}

/// Deterministic page text of `bytes` bytes, different for each `seed`.
pub fn page_text(seed: usize, bytes: usize) -> String {
    let mut rng = fastrand::Rng::with_seed(seed as u64);
    let mut text = format!("# Benchmark page {seed}\n\n");
    while text.len() < bytes {
        let word_len = rng.usize(2..9);
        text.extend((0..word_len).map(|_| rng.lowercase()));
        text.push(if rng.u8(..16) == 0 { '\n' } else { ' ' });
    }
    text.truncate(bytes);
    text
}

/// Frontmatter categories of the wiki benchmark's pages.
pub const CATEGORIES: [&str; 8] = [
    "Project",
    "Meeting",
    "Howto",
    "Decision",
    "Person",
    "Reference",
    "Idea",
    "Index",
];
/// Tags of the wiki benchmark's pages: `tag00` … `tag39`.
pub const TAGS: usize = 40;
const VOCABULARY_WORDS: usize = 6000;

/// The words wiki pages are written in, most frequent first: common English words, then
/// pronounceable made-up ones, each distinct.
pub fn vocabulary() -> &'static [String] {
    static WORDS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    WORDS.get_or_init(|| {
        const COMMON: &str = "the of and to in a is that for it as with was on be by this are \
            from at or an which have not but we they all can has one their been more will \
            there if would when so what about also into other only some could time these two \
            may then do first any new like now such no use how our out should well just most \
            page wiki deploy lambda cold start latency storage cache search index link commit \
            branch review meeting plan release bench query team design notes draft budget";
        let mut words: Vec<String> = COMMON.split_whitespace().map(str::to_owned).collect();
        let mut seen: std::collections::HashSet<String> = words.iter().cloned().collect();
        let mut rng = fastrand::Rng::with_seed(42);
        const ONSETS: [&str; 16] = [
            "b", "c", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "br", "st",
        ];
        const VOWELS: [&str; 6] = ["a", "e", "i", "o", "u", "ai"];
        while words.len() < VOCABULARY_WORDS {
            let syllables = rng.usize(2..5);
            let word: String = (0..syllables)
                .map(|_| format!("{}{}", ONSETS[rng.usize(..16)], VOWELS[rng.usize(..6)]))
                .collect();
            if seen.insert(word.clone()) {
                words.push(word);
            }
        }
        words
    })
}

/// A word drawn with Zipf's law over [`vocabulary`] (the r-th word with weight 1/r).
fn zipf_word(rng: &mut fastrand::Rng) -> &'static str {
    static CUMULATIVE: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    let cumulative = CUMULATIVE.get_or_init(|| {
        let mut total = 0.0;
        (1..=VOCABULARY_WORDS)
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect()
    });
    let total = cumulative.last().copied().unwrap_or(1.0);
    let x = rng.f64() * total;
    let at = cumulative.partition_point(|c| *c < x);
    vocabulary()[at.min(VOCABULARY_WORDS - 1)].as_str()
}

/// The n-th page of a wiki benchmark, about `bytes` long: frontmatter, a title, and
/// paragraphs with links to other pages of the `pages`-page wiki.
pub fn wiki_page_text(n: usize, pages: usize, bytes: usize) -> String {
    let mut rng = fastrand::Rng::with_seed(n as u64 ^ 0x5eed);
    let index = n % pages.max(1);
    let tags: Vec<String> = (0..rng.usize(1..4))
        .map(|_| format!("tag{:02}", rng.usize(..TAGS)))
        .collect();
    let mut text = format!(
        "---\ncategory: {}\ntags: [{}]\n---\n# {}\n\n",
        CATEGORIES[index % CATEGORIES.len()],
        tags.join(", "),
        bench_page(index, pages)
    );
    let mut words_in_paragraph = 0;
    while text.len() < bytes {
        if rng.usize(..40) == 0 {
            let target = rng.usize(..pages.max(1));
            if rng.usize(..20) == 0 {
                text.push_str(&format!("[[Drafts/Missing {target}]] "));
            } else if rng.usize(..4) == 0 {
                // A relative link from this page's directory (`Area 001/…` → `../Area 002/…`).
                let page = bench_page(target, pages);
                text.push_str(&format!(
                    "[see](../{}.md) ",
                    page.as_str().replace(' ', "%20")
                ));
            } else {
                text.push_str(&format!("[[{}]] ", bench_page(target, pages)));
            }
        }
        text.push_str(zipf_word(&mut rng));
        words_in_paragraph += 1;
        if words_in_paragraph > 12 && rng.usize(..14) == 0 {
            text.push_str(".\n");
            if rng.usize(..4) == 0 {
                text.push('\n');
            }
            words_in_paragraph = 0;
        } else {
            text.push(' ');
        }
    }
    // Cut at a character boundary at or below `bytes`, then end the line.
    let mut cut = bytes.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text.push('\n');
    text
}

pub fn bench_author() -> Author {
    // Constant, valid input.
    Author::new("Bench", "bench@wikibot.invalid").unwrap_or_else(|e| unreachable!("{e}"))
}

/// Creates wiki `name` under `root` with `shape.commits` commits, one second apart (so the
/// history has distinct times, as a real one mostly does). Refuses to touch an existing wiki,
/// so a benchmark never writes into real data. Maintenance does not run on its own while it
/// writes; `pack` runs it once at the end (grace 0: nothing else uses the new wiki).
pub fn prepare_repo(
    root: &Path,
    name: &WikiName,
    shape: RepoShape,
    pack: bool,
) -> Result<(), StoreError> {
    let mut config = StoreConfig::new(root);
    config.maintain_after_loose_objects = 0;
    config.maintenance.grace = Duration::ZERO;
    let store = Store::new(config);
    let (wiki, created) = store.init(name)?;
    if !created {
        return Err(StoreError::InvalidInput(format!(
            "wiki '{name}' already exists under {}; choose another --root or --wiki",
            root.display()
        )));
    }
    let author = bench_author();
    let spacing = shape.seconds_between.max(1);
    let start = SystemTime::now() - Duration::from_secs(shape.commits as u64 * spacing);
    for n in 0..shape.commits {
        let page = bench_page(n, shape.pages);
        let content = match shape.content {
            Content::Random => page_text(n, shape.page_bytes),
            Content::Wiki => wiki_page_text(n, shape.pages, shape.page_bytes),
        };
        let message = format!("Bench commit {n}");
        wiki.write(&WriteRequest {
            page: &page,
            content: &content,
            author: &author,
            message: &message,
            time: start + Duration::from_secs(n as u64 * spacing),
            expect: Expect::Anything,
        })?;
    }
    if pack {
        wiki.maintain()?;
    }
    Ok(())
}

/// A store operation to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreOp {
    /// Read one page at the tip.
    Read,
    /// Commit a change to one page (a different page each time).
    Write,
    /// The last 50 commits of the wiki.
    History,
}

/// The write `run_store_op` measures: the n-th page gets new 1 KB content.
pub fn bench_write(
    wiki: &Wiki,
    author: &Author,
    n: usize,
    pages: usize,
) -> Result<crate::store::WriteOutcome, StoreError> {
    let page = bench_page(n, pages);
    let content = format!("# Write {n}\n\n{}", page_text(n, 1024));
    wiki.write(&WriteRequest {
        page: &page,
        content: &content,
        author,
        message: "Bench write",
        time: SystemTime::now(),
        expect: Expect::Anything,
    })
}

/// Runs `op` once to warm up (open the repository, fill caches), then `count` times,
/// returning each timed run.
pub fn run_store_op(wiki: &Wiki, op: StoreOp, count: usize) -> Result<Vec<Duration>, StoreError> {
    let author = bench_author();
    let pages = wiki.list("")?.len().max(1);
    let read_page = bench_page(0, pages);
    let once = |n: usize| -> Result<(), StoreError> {
        match op {
            StoreOp::Read => wiki.read(&read_page).map(drop),
            StoreOp::History => wiki.history(None, 50).map(drop),
            StoreOp::Write => bench_write(wiki, &author, n, pages).map(drop),
        }
    };
    once(usize::MAX / 2)?;
    let seed = fastrand::usize(..1 << 40);
    (0..count)
        .map(|n| {
            let started = Instant::now();
            once(seed + n)?;
            Ok(started.elapsed())
        })
        .collect()
}

/// A wiki tool operation to measure (the store calls behind the MCP tools).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ToolOp {
    /// search_notes: a rare word, a common word, two words, a phrase, a prefix.
    Search,
    /// get_links: a page's links and backlinks.
    Links,
    /// list_notes with filters: by category, by tag under a prefix, changed in the last day.
    List,
    /// find_orphaned_notes.
    Orphans,
    /// write_note with the page index warm (what keeping the index in step costs a write).
    Write,
}

/// The queries `ToolOp::Search` cycles through, with what each stands for.
pub fn bench_queries() -> Vec<(&'static str, String)> {
    let v = vocabulary();
    vec![
        ("rare word", v[3000].clone()),
        ("medium word", v[300].clone()),
        ("common word", v[2].clone()),
        ("two words", format!("{} {}", v[40], v[400])),
        ("phrase", format!("\"{} {}\"", v[0], v[1])),
        ("prefix", format!("{}*", &v[500][..3])),
    ]
}

/// Runs one `op` untimed (to load or build the page index and warm the caches), then `count`
/// times, cycling through the op's variants; returns each timing with its variant's name.
pub fn run_tool_op(
    wiki: &Wiki,
    op: ToolOp,
    count: usize,
) -> Result<Vec<(&'static str, Duration)>, StoreError> {
    use crate::store::{ListRequest, SearchRequest};
    let pages = wiki.list("")?;
    let total = pages.len().max(1);
    let author = bench_author();
    let queries = bench_queries();
    let day_ago = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64 - 24 * 3600);
    let tag = "tag07".to_owned();
    let once = |n: usize| -> Result<&'static str, StoreError> {
        Ok(match op {
            ToolOp::Search => {
                let (kind, query) = &queries[n % queries.len()];
                wiki.search(SearchRequest {
                    query,
                    prefix: "",
                    limit: 10,
                })?;
                kind
            }
            ToolOp::Links => {
                wiki.links(&pages[n.wrapping_mul(7919) % total])?;
                "links"
            }
            ToolOp::List => {
                let (kind, request) = match n % 3 {
                    0 => (
                        "category",
                        ListRequest {
                            category: Some(CATEGORIES[n % CATEGORIES.len()]),
                            ..ListRequest::default()
                        },
                    ),
                    1 => (
                        "tag and prefix",
                        ListRequest {
                            prefix: "Area 0",
                            tag: Some(&tag),
                            ..ListRequest::default()
                        },
                    ),
                    _ => (
                        "changed in a day",
                        ListRequest {
                            updated_since: Some(day_ago),
                            ..ListRequest::default()
                        },
                    ),
                };
                wiki.list_pages(request)?;
                kind
            }
            ToolOp::Orphans => {
                wiki.orphans("", 200)?;
                "orphans"
            }
            ToolOp::Write => {
                bench_write(wiki, &author, n, total)?;
                "write"
            }
        })
    };
    once(usize::MAX / 3)?;
    let seed = fastrand::usize(..1 << 20);
    (0..count)
        .map(|n| {
            let started = Instant::now();
            let kind = once(if op == ToolOp::Write { seed + n } else { n })?;
            Ok((kind, started.elapsed()))
        })
        .collect()
}

/// One cold start: process exec to its first Runtime API request (init) and to its first
/// answer (what a caller waits for).
#[derive(Debug, Clone, Copy)]
pub struct ColdStart {
    pub init: Duration,
    pub first_response: Duration,
}

/// Starts `spec` afresh `runs` times, invoking it once each time.
pub async fn cold_starts(
    spec: &FunctionSpec,
    event: &[u8],
    runs: usize,
) -> Result<Vec<ColdStart>, EmulatorError> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let mut function = RunningFunction::start(spec.clone()).await?;
        let invocation = function.invoke(event).await?;
        function.kill().await;
        if let (Some(init), Some(first_response)) = (invocation.init, invocation.cold_start_total) {
            samples.push(ColdStart {
                init,
                first_response,
            });
        }
    }
    Ok(samples)
}

/// Order statistics of a set of timings.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Summary {
    pub count: usize,
    pub mean_ms: f64,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    /// `None` for an empty set.
    pub fn of(samples: &[Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort();
        let ms = |d: Duration| crate::lambda::millis(d);
        let at = |q: f64| ms(sorted[((sorted.len() - 1) as f64 * q).round() as usize]);
        let total: Duration = sorted.iter().sum();
        Some(Self {
            count: sorted.len(),
            mean_ms: ms(total / sorted.len() as u32),
            min_ms: at(0.0),
            p50_ms: at(0.5),
            p90_ms: at(0.9),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_orders_samples() {
        let samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let s = Summary::of(&samples).unwrap();
        assert_eq!((s.count, s.min_ms, s.max_ms), (100, 1.0, 100.0));
        assert_eq!(s.p50_ms, 51.0);
        assert_eq!(s.p90_ms, 90.0);
        assert_eq!(s.mean_ms, 50.5);
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn page_text_is_deterministic_and_sized() {
        assert_eq!(page_text(7, 4096), page_text(7, 4096));
        assert_ne!(page_text(7, 4096), page_text(8, 4096));
        assert_eq!(page_text(7, 4096).len(), 4096);
    }

    #[test]
    fn prepared_repo_has_the_requested_history_and_refuses_reuse() {
        let dir = tempfile::tempdir().unwrap();
        let name = WikiName::parse("bench").unwrap();
        let shape = RepoShape {
            commits: 30,
            pages: 10,
            page_bytes: 256,
            ..RepoShape::default()
        };
        prepare_repo(dir.path(), &name, shape, false).unwrap();
        let store = Store::new(StoreConfig::new(dir.path()));
        let wiki = store.open(&name).unwrap();
        assert_eq!(wiki.history(None, 100).unwrap().len(), 30);
        assert_eq!(wiki.list("").unwrap().len(), 10);
        assert!(prepare_repo(dir.path(), &name, shape, true).is_err());
        for op in [StoreOp::Read, StoreOp::Write, StoreOp::History] {
            assert_eq!(run_store_op(&wiki, op, 3).unwrap().len(), 3);
        }
        assert_eq!(
            wiki.history(None, 100).unwrap().len(),
            30 + 1 + 3,
            "warm-up + 3 writes"
        );
    }
}

/// How a load run went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadReport {
    pub concurrency: usize,
    pub requests: usize,
    pub failures: usize,
    pub seconds: f64,
    pub throughput_per_sec: f64,
    pub latency: Option<Summary>,
}

/// Sends `tools/call echo` to an MCP endpoint from `concurrency` workers for `duration`,
/// over kept-alive connections, checking every answer. The body is what any MCP client sends
/// to a stateless server: one JSON-RPC request, no session.
pub async fn mcp_echo_load(
    url: &str,
    token: Option<&str>,
    concurrency: usize,
    duration: Duration,
) -> Result<LoadReport, String> {
    let client = crate::tls::client_builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..concurrency.max(1) {
        let client = client.clone();
        let url = url.to_owned();
        let token = token.map(str::to_owned);
        workers.spawn(async move {
            let mut samples = Vec::new();
            let mut failures = 0usize;
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let text = format!("w{worker}-{n}");
                let body = serde_json::json!({"jsonrpc": "2.0", "id": n, "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"text": text}}});
                let mut request = client
                    .post(&url)
                    .header("accept", "application/json, text/event-stream")
                    .header("content-type", "application/json")
                    .header("mcp-protocol-version", "2025-06-18")
                    .body(body.to_string());
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                let sent = Instant::now();
                let ok = match request.send().await {
                    Ok(response) if response.status().is_success() => response
                        .text()
                        .await
                        .is_ok_and(|t| t.contains(&format!("\"{text}\""))),
                    _ => false,
                };
                if ok {
                    samples.push(sent.elapsed());
                } else {
                    failures += 1;
                }
            }
            (samples, failures)
        });
    }
    let mut samples = Vec::new();
    let mut failures = 0;
    while let Some(done) = workers.join_next().await {
        let (s, f) = done.map_err(|e| format!("load worker: {e}"))?;
        samples.extend(s);
        failures += f;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(LoadReport {
        concurrency,
        requests: samples.len(),
        failures,
        seconds,
        throughput_per_sec: samples.len() as f64 / seconds,
        latency: Summary::of(&samples),
    })
}
