//! `wikibot`: the command line. It runs compiled Lambda bootstraps locally through the
//! Runtime API emulator (`invoke`), serves them by name over the Lambda service's API
//! (`emulate`), measures the store, cold starts and deployed functions (`bench`), mounts the
//! EFS latency simulator (`efs-sim`), and signs a person in through WorkOS (`workos login`).
//! Each subcommand parses its arguments, calls the library, and prints; nothing more.

// The simulator is compiled into this binary only, so that no Lambda bootstrap links fuser.
#[path = "../efs_sim.rs"]
mod efs_sim;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use wikibot::bench::{self, RepoShape, StoreOp, Summary};
use wikibot::lambda::emulator::{FunctionSpec, Outcome, RunningFunction, resolve_bootstrap};
use wikibot::lambda::millis;
use wikibot::store::{Store, StoreConfig, WikiName};

/// A wiki that AI assistants read and write over MCP, stored in git, served by AWS Lambda.
#[derive(Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the MCP wiki server locally: Streamable HTTP on 127.0.0.1, pages in a local git
    /// repository.
    ///
    /// Without --authkit-domain or a token it generates a static bearer token and prints it,
    /// with the commands that connect Claude Code or the MCP Inspector.
    ///
    /// Example: wikibot serve --port 8080
    Serve(ServeArgs),
    /// Run a compiled Lambda bootstrap locally, as Lambda would, and print its responses.
    ///
    /// The bootstrap is started in a clean environment with Lambda's reserved variables and
    /// its own Runtime API endpoint. The first event is a cold start; every further event goes
    /// to the same process (warm). Responses are printed to stdout, one JSON document per
    /// line; the function's logs and per-invocation timings go to stderr.
    ///
    /// Example: wikibot invoke git-probe --event '{"op":"lifecycle","repo":"demo"}'
    Invoke(InvokeArgs),
    /// Serve the built Lambda functions by name over the Lambda service's own API, for the
    /// AWS SDKs and CLI: Invoke (with LogType Tail: START/END/REPORT log lines measured
    /// here), GetFunction, Get/UpdateFunctionConfiguration, ListFunctions.
    ///
    /// Each function (efs-probe, git-probe, mcp-server built next to this wikibot, or those
    /// given with --function) gets WIKIBOT_ROOT=--root and the --env variables as its
    /// configured environment. Concurrent invocations run in separate processes (execution
    /// environments), started on demand: a new one is a cold start. A configuration update
    /// retires them all, so the next invocation is cold. Runs until Ctrl-C or SIGTERM.
    ///
    /// Every invocation gets a trace header: the caller's X-Amzn-Trace-Id continued, or a
    /// fresh sampled one; with --env AWS_XRAY_DAEMON_ADDRESS=HOST:PORT the functions send
    /// their subsegments to an X-Ray daemon (or stand-in) there.
    ///
    /// The emulator checks no request signature and has no access control: anyone who can
    /// reach its port can run the functions and change their environment. So it listens on
    /// loopback only, unless --allow-remote says otherwise.
    ///
    /// Example: wikibot emulate --port 9001 --root wikibot-data
    Emulate(EmulateArgs),
    /// Maintain a wiki's repository: pack new objects, index new commits for page history,
    /// and delete what is safely redundant (after the grace period).
    ///
    /// Safe while other processes read and write the wiki, and beside a person's `git gc`.
    /// Writes run it on their own once enough loose objects pile up; on AWS a schedule
    /// invokes it too. Prints what it did.
    ///
    /// Example: wikibot maintain --root wikibot-data --wiki wiki
    Maintain(MaintainArgs),
    /// Measure the page store and Lambda cold starts.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Mount a directory through a FUSE pass-through file system that delays every
    /// operation, to measure what EFS's network round trips cost (needs root and /dev/fuse).
    ///
    /// Every request the kernel sends (lookup, getattr, open, read, write, flush, rename,
    /// link, unlink, readdir, flock, ...) is done on --backing, then answered after
    /// --delay-ms, as an NFS client on EFS waits one round trip per operation. What the
    /// kernel may cache is set by --cache. The process stays in the foreground until SIGINT
    /// or SIGTERM, unmounts, and prints how many operations it delayed, by kind (SIGUSR1
    /// prints them without stopping). Exit status 3: FUSE is not available here (no
    /// /dev/fuse, or mounting not permitted).
    ///
    /// Example: wikibot efs-sim --backing /srv/wiki --mount /mnt/efs --delay-ms 1
    EfsSim(EfsSimArgs),
    /// WorkOS, the sign-in service behind the MCP server's OAuth.
    #[cfg(feature = "workos-cli")]
    #[command(subcommand)]
    Workos(WorkosCommand),
}

#[cfg(feature = "workos-cli")]
#[derive(Subcommand)]
enum WorkosCommand {
    /// Sign in through WorkOS in a browser and print who WorkOS says you are (P0-6).
    ///
    /// Runs OAuth's authorization-code flow with PKCE (S256) and a random state against
    /// WorkOS User Management: starts a callback server on 127.0.0.1 (a free port, or
    /// --port), prints the authorize URL and opens it in a browser when one is available,
    /// waits for the browser to come back to http://127.0.0.1:PORT/callback, exchanges the
    /// code at /user_management/authenticate, and prints the profile (id, email, verified,
    /// first and last name, authentication method) and, from
    /// /user_management/users/{id}/identities, the provider's own user id (idp_id).
    ///
    /// Configuration: WORKOS_CLIENT_ID (or --client-id), the environment's client id;
    /// WORKOS_API_KEY, its secret API key (sk_…), or --from-pulumi to read it with `pulumi
    /// config get workos_api_key` in infra/ (where the deployment keeps it); WORKOS_BASE_URL
    /// (default https://api.workos.com). The API key is never printed.
    ///
    /// WorkOS only redirects to registered redirect URIs: register
    /// http://127.0.0.1:PORT/callback in the dashboard (Redirects) and pass the same
    /// --port. Setup and what is verified: docs/workos.md.
    ///
    /// Example: WORKOS_CLIENT_ID=client_… wikibot workos login --from-pulumi --port 8765
    Login(LoginArgs),
}

#[cfg(feature = "workos-cli")]
#[derive(Args)]
struct LoginArgs {
    /// How to sign in: a social provider, or authkit for AuthKit's own page (every method
    /// the environment has turned on).
    #[arg(long, value_enum, ignore_case = true, default_value = "GoogleOAuth")]
    provider: wikibot::workos_login::Provider,
    /// Port for the callback server on 127.0.0.1 (0: any free port). The redirect URI
    /// http://127.0.0.1:PORT/callback must be registered in WorkOS.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// How long to wait for the browser to come back.
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Bound on each call to WorkOS's API.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    api_timeout: Duration,
    /// The WorkOS client id (client_…).
    #[arg(long, env = "WORKOS_CLIENT_ID", value_name = "ID")]
    client_id: Option<String>,
    /// WorkOS's API (WorkOS's emulator for tests: http://localhost:4100).
    #[arg(long, env = "WORKOS_BASE_URL", value_name = "URL", default_value = wikibot::workos_login::DEFAULT_BASE_URL)]
    base_url: String,
    /// Read the API key with `pulumi config get workos_api_key` in --pulumi-dir instead of
    /// WORKOS_API_KEY.
    #[arg(long)]
    from_pulumi: bool,
    /// The Pulumi project for --from-pulumi.
    #[arg(
        long,
        default_value = "infra",
        value_name = "DIR",
        requires = "from_pulumi"
    )]
    pulumi_dir: PathBuf,
    /// The Pulumi stack for --from-pulumi (default: the selected one).
    #[arg(long, value_name = "STACK", requires = "from_pulumi")]
    stack: Option<String>,
    /// The email to preselect at the provider (WorkOS's login_hint).
    #[arg(long, value_name = "EMAIL")]
    login_hint: Option<String>,
    /// Do not try to open a browser; only print the URL.
    #[arg(long)]
    no_browser: bool,
    /// Print the result as one JSON document.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct EfsSimArgs {
    /// The real directory to serve.
    #[arg(long, value_name = "DIR")]
    backing: PathBuf,
    /// Where to mount it: an existing, empty directory outside --backing.
    #[arg(long, value_name = "DIR")]
    mount: PathBuf,
    /// Delay per operation in milliseconds, e.g. 0.5-3 for EFS; 0 measures FUSE alone.
    #[arg(long, default_value_t = 1.0, value_name = "MS", value_parser = parse_delay_ms)]
    delay_ms: f64,
    /// What the kernel may cache. nfs: attributes and names 3 s for files, 30 s for
    /// directories and for names that do not exist, file pages kept across opens (an NFS
    /// client's defaults, close-to-open); none: nothing, every lookup, stat and read reaches
    /// the file system (pessimistic).
    #[arg(long, value_enum, default_value = "nfs")]
    cache: efs_sim::CachePreset,
    /// Which requests cost a round trip. nfs: those the Linux NFS client would send for the
    /// same system calls (a lookup that finds a name missing just before it is created,
    /// attributes the kernel re-asks for after a local change, and flushes on close are
    /// free: NFS folds them into the create, the reply, and an unwaited CLOSE);
    /// every-request: every request FUSE sends (pessimistic).
    #[arg(long, value_enum, default_value = "nfs")]
    model: efs_sim::Model,
    /// Override the preset's cache time for file attributes and names.
    #[arg(long, value_name = "MS")]
    attr_ttl_ms: Option<u64>,
    /// Override the preset's cache time for directories and for names that do not exist.
    #[arg(long, value_name = "MS")]
    dir_ttl_ms: Option<u64>,
    /// Threads answering requests: how many round trips may be in flight at once. The Linux
    /// NFS client keeps up to 64 requests in flight per session (`max_session_slots`); a
    /// request the kernel sends without waiting (a release) holds a thread for its delay too.
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Also write the counts as JSON to FILE, on exit and on SIGUSR1.
    #[arg(long, value_name = "FILE")]
    stats: Option<PathBuf>,
}

#[derive(Args)]
struct EmulateArgs {
    /// Address to listen on: loopback unless --allow-remote.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port to listen on (0: any free port; the endpoint is printed).
    #[arg(long, default_value_t = 9001)]
    port: u16,
    #[command(flatten)]
    function: FunctionArgs,
    /// Serve this bootstrap as function NAME (repeatable). Default: efs-probe, git-probe and
    /// mcp-server, those of them built next to this wikibot.
    #[arg(long = "function", value_name = "NAME=PATH", value_parser = parse_function)]
    functions: Vec<(String, PathBuf)>,
    /// Environments (processes) one function may run at once; more concurrent invocations
    /// are throttled (429 TooManyRequestsException), as Lambda's concurrency limit does.
    #[arg(long, default_value_t = wikibot::lambda::service::DEFAULT_MAX_ENVIRONMENTS, value_name = "N")]
    max_environments: usize,
    /// How long LastUpdateStatus stays InProgress after a configuration update.
    #[arg(long, default_value_t = wikibot::lambda::service::DEFAULT_UPDATE_DELAY.as_millis() as u64, value_name = "MS")]
    update_delay_ms: u64,
    /// Do not copy the functions' logs (and START/END/REPORT lines) to stderr.
    #[arg(long, short)]
    quiet: bool,
    /// Listen on a non-loopback --host. Only on a network you trust: nothing is
    /// authenticated.
    #[arg(long)]
    allow_remote: bool,
}

#[derive(Args)]
struct MaintainArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The wiki to maintain (its repository is DIR/NAME.git).
    #[arg(long, env = "WIKIBOT_WIKI", default_value = wikibot::mcp::config::DEFAULT_WIKI, value_name = "NAME")]
    wiki: String,
    /// Delete redundant files only once older than this (seconds). The default outlasts the
    /// longest Lambda invocation and other NFS clients' caches; 0 is safe only when no other
    /// process uses the repository.
    #[arg(long, env = "WIKIBOT_MAINTENANCE_GRACE_SECS", value_name = "SECONDS",
          default_value_t = wikibot::store::MaintainOptions::DEFAULT_GRACE.as_secs())]
    grace_secs: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The wiki to serve (its repository is DIR/NAME.git).
    #[arg(long, env = "WIKIBOT_WIKI", default_value = wikibot::mcp::config::DEFAULT_WIKI, value_name = "NAME")]
    wiki: String,
    /// Address to listen on; loopback unless --public-url says otherwise.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The URL clients use for the MCP endpoint (default: http://HOST:PORT/mcp).
    #[arg(long, env = "MCP_RESOURCE_URL", value_name = "URL")]
    public_url: Option<String>,
    /// Static bearer token to accept (at least 32 characters).
    #[arg(
        long,
        env = "MCP_AUTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// WorkOS AuthKit domain for OAuth (e.g. acme.authkit.app).
    #[arg(long, env = "AUTHKIT_DOMAIN", value_name = "DOMAIN")]
    authkit_domain: Option<String>,
    /// With OAuth: who may use the wiki, one rule per --allow (or comma-separated):
    /// user:user_01…=rw, email:ada@example.com=ro, domain:example.com=rw, org:org_01…=ro.
    /// E-mail and domain rules count only verified addresses; domains match exactly.
    #[arg(
        long = "allow",
        env = "MCP_ALLOW",
        value_delimiter = ',',
        value_name = "RULE"
    )]
    allow: Vec<String>,
    /// With OAuth: let every user AuthKit signs in read and write (instead of --allow).
    #[arg(long, env = "MCP_ALLOW_ANY_USER")]
    allow_any_user: bool,
    /// WorkOS API key, to look up signed-in users' names and e-mails (commit authors, the
    /// e-mail rules of --allow).
    #[arg(
        long,
        env = "WORKOS_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    workos_api_key: Option<String>,
    /// The WorkOS API (a local emulator or mock, for tests).
    #[arg(long, env = "WORKOS_BASE_URL", value_name = "URL")]
    workos_base_url: Option<String>,
    /// The JWT-template claim holding the user's name.
    #[arg(
        long,
        env = "MCP_NAME_CLAIM",
        default_value = "name",
        value_name = "CLAIM"
    )]
    name_claim: String,
    /// The JWT-template claim holding the user's e-mail address.
    #[arg(
        long,
        env = "MCP_EMAIL_CLAIM",
        default_value = "email",
        value_name = "CLAIM"
    )]
    email_claim: String,
    /// The JWT-template claim saying whether that address is verified.
    #[arg(
        long,
        env = "MCP_EMAIL_VERIFIED_CLAIM",
        default_value = "email_verified",
        value_name = "CLAIM"
    )]
    email_verified_claim: String,
    /// A browser origin allowed to call (repeatable; default: the server's own origin).
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// Accept requests without credentials (loopback only; for MCP conformance runs).
    #[arg(long, conflicts_with_all = ["token", "authkit_domain", "allow", "allow_any_user"])]
    no_auth: bool,
}

/// The page store's settings: the same environment variables the Lambda functions read.
#[derive(Args, Clone)]
struct StoreArgs {
    /// Directory holding the wikis' git repositories (DIR/NAME.git).
    #[arg(
        long,
        env = "WIKIBOT_ROOT",
        default_value = "wikibot-data",
        value_name = "DIR"
    )]
    root: PathBuf,
    /// How long a write may wait for other writers before it answers "busy".
    #[arg(long, env = "WIKIBOT_WRITE_BUDGET_MS", value_name = "MS",
          default_value_t = StoreConfig::DEFAULT_WRITE_BUDGET.as_millis() as u64)]
    write_budget_ms: u64,
    /// Age after which another program's (a person's git) ref lock counts as abandoned and is
    /// removed. wikibot's own writers never need it: a dead writer's lock is cleared at once.
    #[arg(long, env = "WIKIBOT_STALE_LOCK_SECS", value_name = "SECONDS",
          default_value_t = StoreConfig::DEFAULT_STALE_LOCK_AFTER.as_secs())]
    stale_lock_secs: u64,
    /// Largest page, in bytes.
    #[arg(long, env = "WIKIBOT_MAX_PAGE_BYTES", value_name = "BYTES",
          default_value_t = StoreConfig::DEFAULT_MAX_PAGE_BYTES)]
    max_page_bytes: usize,
}

impl StoreArgs {
    fn config(&self) -> StoreConfig {
        let mut config = StoreConfig::new(&self.root);
        config.write_budget = Duration::from_millis(self.write_budget_ms);
        config.stale_lock_after = Duration::from_secs(self.stale_lock_secs);
        config.max_page_bytes = self.max_page_bytes;
        config
    }
}

#[derive(Args)]
struct InvokeArgs {
    /// Path to the bootstrap binary, or the name of one built next to this `wikibot`
    /// (efs-probe, git-probe).
    bootstrap: PathBuf,
    /// An event (JSON), or @FILE to read it from a file. Repeat for warm invocations.
    #[arg(
        long = "event",
        short = 'e',
        required = true,
        value_name = "JSON|@FILE"
    )]
    events: Vec<String>,
    #[command(flatten)]
    function: FunctionArgs,
    /// Do not copy the function's logs to stderr.
    #[arg(long, short)]
    quiet: bool,
    /// The trace header to send with every event (`Root=1-…;Parent=…;Sampled=1`); by
    /// default each event gets a fresh sampled one, as Lambda with active tracing does.
    #[arg(long, value_name = "HEADER", conflicts_with = "unsampled")]
    trace_header: Option<String>,
    /// Send no trace header: the function traces nothing.
    #[arg(long)]
    unsampled: bool,
    /// Run a local stand-in for the X-Ray daemon (sets AWS_XRAY_DAEMON_ADDRESS) and print
    /// each invocation's subsegments as a tree with durations after its response.
    #[arg(long)]
    xray: bool,
}

#[derive(Args, Clone)]
struct FunctionArgs {
    /// The local directory standing in for the EFS mount (sets WIKIBOT_ROOT).
    #[arg(long, default_value = "wikibot-data", value_name = "DIR")]
    root: PathBuf,
    /// An environment variable for the function; repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env_pair)]
    env: Vec<(String, String)>,
    /// Kill the function if one invocation takes longer (Lambda's timeout).
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    timeout: u64,
    /// Reported to the function as AWS_LAMBDA_FUNCTION_MEMORY_SIZE.
    #[arg(long, default_value_t = 512, value_name = "MB")]
    memory: u32,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Create a benchmark wiki with a known history (default: 1,000 commits, 100 pages of 4 KB).
    Prepare {
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
        #[arg(long, default_value = "bench")]
        wiki: String,
        #[arg(long, default_value_t = RepoShape::default().commits)]
        commits: usize,
        #[arg(long, default_value_t = RepoShape::default().pages)]
        pages: usize,
        #[arg(long, default_value_t = RepoShape::default().page_bytes)]
        page_bytes: usize,
        /// What the pages say: random words (the store benchmarks), or wiki pages with
        /// frontmatter, natural word frequencies and links (the tools benchmark).
        #[arg(long, value_enum, default_value = "random")]
        content: bench::Content,
        /// Seconds between consecutive commits; the last one is now.
        #[arg(long, default_value_t = RepoShape::default().seconds_between)]
        seconds_between: u64,
        /// Run maintenance at the end (pack the objects, index the history, save the page
        /// index), as a wiki in steady state would have had.
        #[arg(long)]
        pack: bool,
    },
    /// Time the wiki tools' store calls (search, links, filtered lists, orphans, writes) on
    /// a prepared wiki: warm (COUNT calls after one untimed call that loads the page index),
    /// or with --fresh the first call of a new process (opening the repository and loading
    /// or building the page index included).
    ///
    /// Example: wikibot bench prepare --root /tmp/w --pages 10000 --commits 10000 --content
    /// wiki --seconds-between 60 --pack && wikibot bench tools --root /tmp/w --op search
    Tools {
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
        #[arg(long, default_value = "bench")]
        wiki: String,
        #[arg(long, value_enum)]
        op: bench::ToolOp,
        #[arg(long, default_value_t = 300)]
        count: usize,
        /// Time only the first call of this process.
        #[arg(long)]
        fresh: bool,
        /// With --fresh and --op search: the query (default: a word of medium frequency).
        #[arg(long)]
        query: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Time one page's history in this process: opening the repository, the first call (a
    /// fresh process's) and COUNT more (warm).
    ///
    /// File-system calls: strace -f -c -e trace=%file wikibot bench history … --count 0,
    /// minus the same with --open-only, is what the first call costs beyond opening.
    History {
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
        #[arg(long, default_value = "bench")]
        wiki: String,
        /// The page (default: the benchmark's first page).
        #[arg(long)]
        page: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long, default_value_t = 100)]
        count: usize,
        /// Open the repository and stop (the baseline for counting file-system calls).
        #[arg(long)]
        open_only: bool,
        #[arg(long)]
        json: bool,
    },
    /// Perform COUNT warm store operations in this process and print their latency.
    ///
    /// One untimed operation first opens the repository and warms the caches, as a warm
    /// Lambda invocation would find them. To count file-system calls per operation:
    /// strace -f -c -e trace=%file wikibot bench store --root DIR --op read --count 1000,
    /// minus the same with --count 0, divided by 1000.
    Store {
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
        #[arg(long, value_enum)]
        op: StoreOp,
        #[arg(long, default_value_t = 1000)]
        count: usize,
        #[arg(long, default_value = "bench")]
        wiki: String,
        /// Let writes maintain the repository past this many loose objects, as the functions
        /// do (512); the default 0 measures the write path alone (time `wikibot maintain` for
        /// what maintenance costs).
        #[arg(long, default_value_t = 0, value_name = "OBJECTS")]
        maintain_after: usize,
        /// Print a JSON summary instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Load an MCP endpoint with `tools/call echo` and print latency and throughput.
    ///
    /// First one connection, one request at a time (round-trip latency), then CONCURRENCY
    /// connections at once (throughput). Every answer is checked.
    Mcp {
        /// The MCP endpoint, e.g. http://127.0.0.1:8080/mcp.
        #[arg(long)]
        url: String,
        /// Bearer token to send.
        #[arg(long, env = "MCP_AUTH_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Seconds per phase.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        #[arg(long)]
        json: bool,
    },
    /// Benchmark the deployed functions through the Lambda API (AWS SDK for Rust), against
    /// AWS or `wikibot emulate`, and judge Phase 0's exit criteria.
    ///
    /// Against git-probe: WARM warm reads and WARM warm writes, COLD cold starts (each forced
    /// by an environment-variable change, waiting until the update has finished; the
    /// variables are restored at the end), concurrent reads, and rounds of concurrent writers
    /// whose commits are then looked up in the wiki's history. Against efs-probe: warm and
    /// cold invocations. For each: the client's wall time, the REPORT line's Duration and
    /// Init Duration, and the function's own timings_ms; p50/p90/p99/max and PASS/FAIL per
    /// criterion. Writes Bench/… pages into --wiki.
    ///
    /// Region and credentials come from the standard AWS chain (environment, profile, SSO
    /// via `aws configure export-credentials`, instance role); a loopback --endpoint-url
    /// (the emulator) needs neither. Needs the `bench-lambda` feature:
    /// cargo build --release --features bench-lambda.
    ///
    /// Example: wikibot bench lambda --endpoint-url http://127.0.0.1:9001 --report-page "Dev/Phase 0 — EFS Benchmarks"
    Lambda(LambdaBenchArgs),
    /// Start a bootstrap afresh RUNS times and time exec → first Runtime API request (init)
    /// and exec → first response.
    Cold {
        /// Path to the bootstrap, or the name of one built next to this `wikibot`.
        bootstrap: PathBuf,
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// The event to send each fresh process.
        #[arg(
            long,
            default_value = r#"{"op":"init","repo":"bench-cold"}"#,
            value_name = "JSON"
        )]
        event: String,
        #[command(flatten)]
        function: FunctionArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct LambdaBenchArgs {
    /// The Lambda API endpoint, e.g. http://127.0.0.1:9001 (wikibot emulate). Default: AWS's,
    /// for the region of the standard chain (or AWS_ENDPOINT_URL).
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
    /// The git-probe function (name or ARN).
    #[arg(long, default_value = "git-probe")]
    function: String,
    /// The efs-probe function (name or ARN).
    #[arg(long, default_value = "efs-probe")]
    efs_function: String,
    /// Do not measure efs-probe.
    #[arg(long)]
    no_efs: bool,
    /// The wiki to read and write (the one the MCP server serves, so the report is seen).
    #[arg(long, default_value = wikibot::mcp::config::DEFAULT_WIKI, value_name = "NAME")]
    wiki: String,
    /// Warm reads and warm writes (each), and warm efs-probe invocations.
    #[arg(long, default_value_t = 20, value_name = "N")]
    warm: usize,
    /// Cold starts per function.
    #[arg(long, default_value_t = 5, value_name = "M")]
    cold: usize,
    /// Reads sent at once.
    #[arg(long, default_value_t = 3, value_name = "N")]
    concurrent_reads: usize,
    /// Rounds of writers sent at once, each writer to its own page.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "5,15",
        value_name = "N,N"
    )]
    writers: Vec<usize>,
    /// Print the whole report as JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Write the report into the wiki as this page, through the git-probe function (a write
    /// event: it lands where the function stores pages), or through --mcp-url.
    #[arg(long, value_name = "PAGE")]
    report_page: Option<String>,
    /// Write the report page through this MCP endpoint (write_note) instead.
    #[arg(long, value_name = "URL", requires = "report_page")]
    mcp_url: Option<String>,
    /// Bearer token for --mcp-url.
    #[arg(long, env = "MCP_AUTH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Also draw the latency chart as an SVG file.
    #[arg(long, value_name = "FILE.svg")]
    chart: Option<PathBuf>,
    /// The git commit of the build being measured (default: this directory's HEAD).
    #[arg(long, value_name = "REV")]
    commit: Option<String>,
}

fn main() -> ExitCode {
    init_logging();
    let result = match Cli::parse().command {
        Command::Serve(args) => block_on(serve(args)).and_then(|result| result),
        Command::Invoke(args) => block_on(invoke(args)).and_then(|result| result),
        Command::Emulate(args) => block_on(emulate(args)).and_then(|result| result),
        Command::Maintain(args) => maintain(&args),
        Command::Bench(command) => bench(command),
        Command::EfsSim(args) => block_on(run_efs_sim(args)).and_then(|result| result),
        #[cfg(feature = "workos-cli")]
        Command::Workos(WorkosCommand::Login(args)) => {
            block_on(workos_login(args)).and_then(|result| result)
        }
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("wikibot: error: {message}");
            ExitCode::FAILURE
        }
    }
}

type CliResult = Result<ExitCode, String>;

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("WIKIBOT_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .fmt_fields(wikibot::lambda::escaping_fields())
        .init();
}

fn block_on<T>(work: impl Future<Output = T>) -> Result<T, String> {
    Ok(tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?
        .block_on(work))
}

async fn serve(args: ServeArgs) -> CliResult {
    use wikibot::auth::{AccessPolicy, IdentityClaims, StaticToken};
    use wikibot::mcp::{self, AuthConfig, AuthKitConfig, ServerConfig};

    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{address}/mcp"));
    let mut generated = None;
    let auth = if args.no_auth {
        // The URL's host is whatever a client claims; what matters is who can connect.
        if !address.ip().is_loopback() {
            return Err(format!(
                "--no-auth needs a loopback listener, not {address}: anyone who can reach it could write the wiki"
            ));
        }
        AuthConfig::Disabled
    } else {
        let static_token = match (&args.token, &args.authkit_domain) {
            (Some(token), _) => Some(StaticToken::new(token)?),
            (None, Some(_)) => None,
            (None, None) => {
                let token = StaticToken::generate()?;
                generated = Some(token.clone());
                Some(token)
            }
        };
        let authkit = match args.authkit_domain.as_deref() {
            Some(domain) => {
                let policy =
                    AccessPolicy::parse_all("--allow", &args.allow).map_err(|e| e.to_string())?;
                let users = mcp::config::user_access(
                    policy,
                    args.allow_any_user,
                    ("--allow", "--allow-any-user"),
                )
                .map_err(|e| e.to_string())?;
                let mut authkit = AuthKitConfig::new(
                    mcp::config::authkit_issuer(domain).map_err(|e| e.to_string())?,
                    users,
                );
                authkit.claims = IdentityClaims {
                    name: args.name_claim.clone(),
                    email: args.email_claim.clone(),
                    email_verified: args.email_verified_claim.clone(),
                };
                authkit.directory = mcp::config::directory_config(
                    args.workos_api_key.as_deref(),
                    args.workos_base_url.as_deref(),
                    ("--workos-api-key", "--workos-base-url"),
                )
                .map_err(|e| e.to_string())?;
                Some(authkit)
            }
            None if !args.allow.is_empty() || args.allow_any_user => {
                return Err(
                    "--allow and --allow-any-user apply to OAuth sign-ins: add --authkit-domain"
                        .into(),
                );
            }
            None => None,
        };
        AuthConfig::Required {
            authkit,
            static_token,
        }
    };
    let config = ServerConfig::build(
        args.store.config(),
        &args.wiki,
        &url,
        auth,
        &[address.to_string()],
        &args.allowed_origins,
        mcp::config::DEFAULT_SCOPES,
    )
    .map_err(|e| e.to_string())?;

    println!("wikibot MCP server listening on {url}");
    println!(
        "wiki '{}' in {}",
        config.wiki,
        args.store
            .root
            .join(config.wiki.repository_dir_name())
            .display()
    );
    match (&config.auth, &generated) {
        (AuthConfig::Disabled, _) => println!("authentication: OFF (loopback only)"),
        (_, Some(token)) => {
            println!(
                "static bearer token (generated; set MCP_AUTH_TOKEN to keep one): {}",
                token.reveal()
            );
            println!("\nConnect Claude Code:");
            println!(
                "  claude mcp add --transport http wikibot {url} --header \"Authorization: Bearer {}\"",
                token.reveal()
            );
            println!("Connect the MCP Inspector (npx @modelcontextprotocol/inspector):");
            println!(
                "  transport Streamable HTTP, URL {url}, header Authorization: Bearer <the token above>"
            );
        }
        (AuthConfig::Required { authkit, .. }, None) => {
            if let Some(authkit) = authkit {
                println!(
                    "OAuth: tokens from {}; metadata at {}",
                    authkit.issuer,
                    config.resource_metadata_url()
                );
                match &authkit.users {
                    wikibot::auth::UserAccess::AnyUser => {
                        println!("access: every signed-in user, read-write (--allow-any-user)");
                    }
                    wikibot::auth::UserAccess::Policy(policy) => {
                        let rules: Vec<String> =
                            policy.rules().iter().map(ToString::to_string).collect();
                        println!("access: {}", rules.join(", "));
                    }
                }
                println!(
                    "authors' names: {}",
                    if authkit.directory.is_some() {
                        "token claims, else WorkOS"
                    } else {
                        "token claims only (no --workos-api-key)"
                    }
                );
            }
            println!(
                "static token: {}",
                if args.token.is_some() {
                    "accepted (MCP_AUTH_TOKEN)"
                } else {
                    "off"
                }
            );
        }
    }
    let app = mcp::app(&config).map_err(|e| e.to_string())?;
    mcp::serve_http(app, listener)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "workos-cli")]
async fn workos_login(args: LoginArgs) -> CliResult {
    use wikibot::workos_login::{ApiKey, BaseUrl, LoginConfig, LoginSession, Report};

    let text = |e: wikibot::workos_login::LoginError| e.to_string();
    let client_id = LoginConfig::client_id(args.client_id.as_deref()).map_err(text)?;
    let base_url = BaseUrl::parse(&args.base_url).map_err(text)?;
    let api_key = if args.from_pulumi {
        ApiKey::from_pulumi(&args.pulumi_dir, args.stack.as_deref()).map_err(text)?
    } else {
        match std::env::var("WORKOS_API_KEY") {
            Ok(key) => ApiKey::new(&key, "WORKOS_API_KEY").map_err(text)?,
            Err(_) => {
                return Err("WORKOS_API_KEY is not set: the environment's secret API key (sk_…), or --from-pulumi to read it from the stack's config".to_owned());
            }
        }
    };
    let config = LoginConfig {
        client_id,
        base_url,
        api_key,
        provider: args.provider,
        port: args.port,
        login_hint: args.login_hint,
        api_timeout: args.api_timeout,
    };
    let session = LoginSession::start(&config).await.map_err(text)?;
    eprintln!(
        "Open this URL in a browser to sign in with {}:\n\n  {}\n",
        config.provider.as_str(),
        session.authorize_url()
    );
    if !args.no_browser {
        match open_browser(session.authorize_url()) {
            Ok(opener) => eprintln!("(opened with {opener})"),
            Err(why) => eprintln!("(no browser opened: {why}; open the URL yourself)"),
        }
    }
    eprintln!(
        "Waiting up to {} for the sign-in to come back to {} …",
        humantime::format_duration(args.timeout),
        session.redirect_uri()
    );
    let signed_in = session.finish(args.timeout).await.map_err(text)?;
    // The profile is worth printing even when the identities cannot be read.
    let identities = signed_in.identities().await;
    let listed = identities.as_deref().unwrap_or_default();
    let report = Report::new(
        config.base_url.as_str(),
        config.provider,
        &signed_in.profile,
        listed,
    );
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", report.text());
    }
    identities
        .map(|_| ExitCode::SUCCESS)
        .map_err(|e| format!("cannot read the user's identities: {e}"))
}

/// Opens `url` in the desktop's browser, if there is one. Never waits for it.
#[cfg(feature = "workos-cli")]
fn open_browser(url: &str) -> Result<&'static str, String> {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        // Without a display, xdg-open would fall back to a text browser in this terminal.
        if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
            return Err("no graphical display (DISPLAY, WAYLAND_DISPLAY)".to_owned());
        }
        "xdg-open"
    };
    let child = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {opener}: {e}"))?;
    // Reap it whenever it ends; its exit status does not matter.
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    Ok(opener)
}

fn maintain(args: &MaintainArgs) -> CliResult {
    let name = WikiName::parse(&args.wiki).map_err(|e| e.to_string())?;
    let mut config = args.store.config();
    config.maintenance.grace = Duration::from_secs(args.grace_secs);
    let store = Store::new(config);
    let wiki = store
        .open(&name)
        .map_err(|e| format!("{e} (under {})", args.store.root.display()))?;
    let report = wiki.maintain().map_err(|e| e.to_string())?;
    if args.json {
        println!("{}", serde_json::json!(report));
    } else if report.skipped {
        println!("another maintenance run is going on this wiki; nothing done");
    } else {
        println!(
            "indexed {} new commit(s); packed {} object(s){}",
            report.commits_indexed,
            report.objects_packed,
            report
                .new_pack
                .as_deref()
                .map(|p| format!(" into {p}"))
                .unwrap_or_default()
        );
        println!(
            "merged {} pack(s); removed {} loose object(s), {} retired pack(s), {} temporary file(s); {} pack(s) now",
            report.packs_merged,
            report.loose_objects_removed,
            report.packs_removed,
            report.temporary_files_removed,
            report.packs
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn invoke(args: InvokeArgs) -> CliResult {
    let events = args
        .events
        .iter()
        .enumerate()
        .map(|(i, raw)| load_event(raw).map_err(|e| format!("event {}: {e}", i + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(header) = &args.trace_header
        && wikibot::lambda::xray::TraceHeader::parse(header).is_none()
    {
        return Err(format!(
            "--trace-header {header:?} is not a trace header (Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=0|1)"
        ));
    }
    let mut spec = function_spec(&args.bootstrap, &args.function)?;
    spec.echo_logs = !args.quiet;
    let daemon = if args.xray {
        let daemon = wikibot::lambda::xray::LocalDaemon::bind()
            .map_err(|e| format!("cannot listen for X-Ray datagrams: {e}"))?;
        let address = daemon.address().map_err(|e| e.to_string())?;
        spec = spec.env("AWS_XRAY_DAEMON_ADDRESS", address.to_string());
        Some(daemon)
    } else {
        None
    };
    let timeout = spec.timeout;
    let mut function = RunningFunction::start(spec)
        .await
        .map_err(|e| e.to_string())?;
    let mut failed = false;
    for (i, event) in events.iter().enumerate() {
        let header = match (&args.trace_header, args.unsampled) {
            (Some(header), _) => Some(header.clone()),
            (None, true) => None,
            (None, false) => Some(wikibot::lambda::emulator::trace_header(true)),
        };
        let invocation = match function
            .invoke_traced(event, header.as_deref(), timeout)
            .await
        {
            Ok(invocation) => invocation,
            Err(e) => {
                eprintln!("invocation {}: {e}", i + 1);
                return Ok(ExitCode::FAILURE);
            }
        };
        println!("{}", invocation.json());
        if let Outcome::FunctionError { .. } = invocation.outcome {
            failed = true;
        }
        if let Some(daemon) = &daemon {
            let documents = daemon
                .drain(Duration::from_millis(50))
                .map_err(|e| format!("reading X-Ray datagrams: {e}"))?;
            let trace = header
                .as_deref()
                .and_then(wikibot::lambda::xray::TraceHeader::parse);
            match trace {
                Some(trace) if trace.sampled => eprintln!(
                    "X-Ray trace {} ({} subsegments):\n{}",
                    trace.root,
                    documents.len(),
                    wikibot::lambda::xray::render_tree(&documents)
                ),
                _ => eprintln!(
                    "X-Ray: not sampled, {} subsegments received",
                    documents.len()
                ),
            }
        }
        if !args.quiet {
            let start = match (invocation.init, invocation.cold_start_total) {
                (Some(init), Some(total)) => format!(
                    "cold: init {} ms, exec to response {} ms, ",
                    millis(init),
                    millis(total)
                ),
                _ => "warm: ".to_owned(),
            };
            eprintln!(
                "invocation {} ({start}duration {} ms, request {})",
                i + 1,
                millis(invocation.duration),
                invocation.request_id
            );
        }
    }
    function.kill().await;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn emulate(args: EmulateArgs) -> CliResult {
    use wikibot::lambda::service::{FunctionDefinition, LambdaService, ServiceOptions};

    if !args.host.is_loopback() && !args.allow_remote {
        return Err(format!(
            "refusing to listen on {}: the emulator authenticates nobody, so anyone who can reach it could run the functions and change their configuration; use a loopback address, or --allow-remote on a network you trust",
            args.host
        ));
    }
    let root = std::fs::create_dir_all(&args.function.root)
        .and_then(|()| std::path::absolute(&args.function.root))
        .map_err(|e| format!("cannot use --root {}: {e}", args.function.root.display()))?;
    let mut missing = Vec::new();
    let functions = if args.functions.is_empty() {
        ["efs-probe", "git-probe", "mcp-server"]
            .into_iter()
            .filter_map(|name| {
                let path = resolve_bootstrap(Path::new(name));
                if path.is_file() {
                    Some((name.to_owned(), path))
                } else {
                    missing.push(name);
                    None
                }
            })
            .collect()
    } else {
        args.functions.clone()
    };
    if functions.is_empty() {
        return Err(
            "no functions built next to this wikibot; build them (cargo build --release --bins) or name them with --function NAME=PATH".into(),
        );
    }
    let definitions = functions
        .into_iter()
        .map(|(name, bootstrap)| {
            let mut definition = FunctionDefinition::new(name, bootstrap);
            definition
                .environment
                .insert("WIKIBOT_ROOT".into(), root.display().to_string());
            definition
                .environment
                .extend(args.function.env.iter().cloned());
            definition.memory_mb = args.function.memory;
            definition.timeout = Duration::from_secs(args.function.timeout);
            definition
        })
        .collect();
    let options = ServiceOptions {
        max_environments: args.max_environments.max(1),
        update_delay: Duration::from_millis(args.update_delay_ms),
        echo_logs: !args.quiet,
    };
    let service = LambdaService::new(definitions, options).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind((args.host, args.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let region = wikibot::lambda::emulator::REGION;
    println!("endpoint: http://{address}");
    println!(
        "functions: {} (WIKIBOT_ROOT={})",
        service.function_names().join(", "),
        root.display()
    );
    if !missing.is_empty() {
        println!("not built, so not served: {}", missing.join(", "));
    }
    println!("For an AWS SDK or the AWS CLI (no signature is checked; any keys do):");
    println!(
        "  export AWS_ENDPOINT_URL=http://{address} AWS_REGION={region} AWS_ACCESS_KEY_ID=emulator AWS_SECRET_ACCESS_KEY=emulator AWS_EC2_METADATA_DISABLED=true"
    );
    println!(
        "  wikibot bench lambda --endpoint-url http://{address}    # needs the bench-lambda feature"
    );
    println!("Ctrl-C stops.");
    let shutdown = async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            Some(()) = async { match terminate.as_mut() { Some(t) => t.recv().await, None => std::future::pending().await } } => {}
        }
    };
    service
        .serve(listener, shutdown)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

fn parse_function(raw: &str) -> Result<(String, PathBuf), String> {
    match raw.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            Ok((name.to_owned(), resolve_bootstrap(Path::new(path))))
        }
        _ => Err(format!("expected NAME=PATH, got {raw:?}")),
    }
}

#[cfg(feature = "bench-lambda")]
fn bench_lambda(args: LambdaBenchArgs) -> CliResult {
    use wikibot::bench::lambda::{self, Options, report};

    let options = Options {
        endpoint_url: args.endpoint_url.clone(),
        function: args.function.clone(),
        efs_function: (!args.no_efs).then(|| args.efs_function.clone()),
        wiki: args.wiki.clone(),
        warm: args.warm,
        cold: args.cold,
        concurrent_reads: args.concurrent_reads,
        writers: args.writers.iter().copied().filter(|&w| w > 0).collect(),
        commit: args.commit.clone().unwrap_or_else(lambda::current_commit),
        progress: true,
    };
    block_on(async {
        let report = lambda::run(&options).await.map_err(|e| e.to_string())?;
        if let Some(path) = &args.chart {
            report::svg_chart(&report, path).map_err(|e| e.to_string())?;
        }
        let page = report::page(&report);
        let written = match (&args.report_page, &args.mcp_url) {
            (None, _) => None,
            (Some(name), Some(url)) => Some(
                lambda::write_page_through_mcp(url, args.token.as_deref(), name, &page)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
            (Some(name), None) => {
                let client = lambda::client(options.endpoint_url.as_deref()).await;
                let revision = lambda::write_page_through_function(
                    &client,
                    &options.function,
                    &options.wiki,
                    name,
                    &page,
                )
                .await
                .map_err(|e| e.to_string())?;
                Some(format!(
                    "wrote '{name}' into wiki '{}' through {} (revision {revision})",
                    options.wiki, options.function
                ))
            }
        };
        if args.json {
            println!(
                "{}",
                serde_json::json!({"report": report, "report_page": written})
            );
        } else {
            let env = &report.environment;
            println!(
                "Lambda benchmark at {} ({}), wiki '{}', build {}\n",
                env.endpoint, env.region, env.wiki, env.commit
            );
            println!("{}", report::measurement_table(&report));
            println!("{}", report::verdict_table(&report));
            if let Some(written) = written {
                println!("report page: {written}");
            }
            if let Some(path) = &args.chart {
                println!("chart: {}", path.display());
            }
        }
        Ok(ExitCode::SUCCESS)
    })?
}

#[cfg(not(feature = "bench-lambda"))]
fn bench_lambda(_args: LambdaBenchArgs) -> CliResult {
    Err("this wikibot was built without the AWS SDK; rebuild it with the bench-lambda feature: cargo build --release --features bench-lambda".into())
}

/// Exit status of `efs-sim` when FUSE cannot be used on this machine.
const FUSE_UNAVAILABLE: u8 = 3;

async fn run_efs_sim(args: EfsSimArgs) -> CliResult {
    use efs_sim::{Ending, Signals, SimConfig, Simulator};

    let (file_ttl, dir_ttl) = args.cache.ttls();
    let config = SimConfig {
        backing: args.backing,
        mount: args.mount,
        delay: Duration::from_secs_f64(args.delay_ms / 1000.0),
        cache: args.cache,
        file_ttl: args.attr_ttl_ms.map_or(file_ttl, Duration::from_millis),
        dir_ttl: args.dir_ttl_ms.map_or(dir_ttl, Duration::from_millis),
        threads: usize::from(args.threads),
        model: args.model,
    };
    let mut signals = Signals::register().map_err(|e| e.to_string())?;
    let simulator = match Simulator::mount(&config) {
        Ok(simulator) => simulator,
        Err(e) if e.fuse_unavailable() => {
            eprintln!("wikibot: error: {e}");
            return Ok(ExitCode::from(FUSE_UNAVAILABLE));
        }
        Err(e) => return Err(e.to_string()),
    };
    let stats = simulator.stats();
    println!(
        "efs-sim: {} mounted at {} ({} ms per operation, cache {}: files {} ms, directories {} ms; {} threads); SIGINT or SIGTERM unmounts",
        simulator.backing().display(),
        simulator.mount_point().display(),
        args.delay_ms,
        config.cache.name(),
        config.file_ttl.as_millis(),
        config.dir_ttl.as_millis(),
        config.threads,
    );
    let write_stats = |snapshot: &efs_sim::StatsSnapshot| -> Result<(), String> {
        if let Some(path) = &args.stats {
            let json = serde_json::to_vec_pretty(snapshot).map_err(|e| e.to_string())?;
            // Written whole under another name, then renamed: a reader never sees half.
            let partial = path.with_extension("partial");
            std::fs::write(&partial, json)
                .and_then(|()| std::fs::rename(&partial, path))
                .map_err(|e| format!("cannot write --stats {}: {e}", path.display()))?;
        }
        Ok(())
    };
    let ending = simulator
        .serve(&mut signals, |stats| {
            let snapshot = stats.snapshot();
            eprintln!("efs-sim: {}", snapshot.report());
            if let Err(e) = write_stats(&snapshot) {
                eprintln!("wikibot: error: {e}");
            }
        })
        .await;
    let snapshot = stats.snapshot();
    eprintln!("efs-sim: {}", snapshot.report());
    write_stats(&snapshot)?;
    match ending.map_err(|e| e.to_string())? {
        Ending::Signal(signal) => eprintln!("efs-sim: {signal}: unmounted"),
        Ending::UnmountedElsewhere => eprintln!("efs-sim: unmounted by someone else"),
        Ending::Abandoned => {
            return Err("quit while the lazily detached mount was still in use".into());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_delay_ms(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(ms) if ms.is_finite() && (0.0..=60_000.0).contains(&ms) => Ok(ms),
        _ => Err(format!(
            "expected milliseconds from 0 to 60000, got {raw:?}"
        )),
    }
}

fn load_event(raw: &str) -> Result<Vec<u8>, String> {
    let bytes = match raw.strip_prefix('@') {
        Some(file) => std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?,
        None => raw.as_bytes().to_vec(),
    };
    serde_json::from_slice::<serde::de::IgnoredAny>(&bytes)
        .map_err(|e| format!("not JSON ({e}); Lambda accepts only JSON events"))?;
    Ok(bytes)
}

fn function_spec(bootstrap: &Path, args: &FunctionArgs) -> Result<FunctionSpec, String> {
    let bootstrap = resolve_bootstrap(bootstrap);
    if !bootstrap.is_file() {
        return Err(format!(
            "no bootstrap at {}; build it first (cargo build --release) or give its path",
            bootstrap.display()
        ));
    }
    std::fs::create_dir_all(&args.root)
        .and_then(|()| std::path::absolute(&args.root))
        .map(|root| {
            let mut spec =
                FunctionSpec::new(bootstrap).env("WIKIBOT_ROOT", root.display().to_string());
            spec.env.extend(args.env.iter().cloned());
            spec.timeout = Duration::from_secs(args.timeout);
            spec.memory_mb = args.memory;
            spec
        })
        .map_err(|e| format!("cannot use --root {}: {e}", args.root.display()))
}

fn parse_env_pair(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {raw:?}")),
    }
}

fn bench(command: BenchCommand) -> CliResult {
    match command {
        BenchCommand::Lambda(args) => bench_lambda(args),
        BenchCommand::Prepare {
            root,
            wiki,
            commits,
            pages,
            page_bytes,
            content,
            seconds_between,
            pack,
        } => {
            let name = WikiName::parse(&wiki).map_err(|e| e.to_string())?;
            let shape = RepoShape {
                commits,
                pages: pages.max(1),
                page_bytes,
                content,
                seconds_between,
            };
            bench::prepare_repo(&root, &name, shape, pack).map_err(|e| e.to_string())?;
            println!(
                "prepared wiki '{name}' under {} with {commits} commits over {} pages",
                root.display(),
                shape.pages
            );
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Store {
            root,
            op,
            count,
            wiki,
            maintain_after,
            json,
        } => {
            let name = WikiName::parse(&wiki).map_err(|e| e.to_string())?;
            let mut config = StoreConfig::from_env(&root).map_err(|e| e.to_string())?;
            config.root = root.clone();
            config.maintain_after_loose_objects = maintain_after;
            let store = Store::new(config);
            let wiki = store.open(&name).map_err(|e| {
                format!(
                    "{e} (under {}; run `wikibot bench prepare --root {}` first)",
                    root.display(),
                    root.display()
                )
            })?;
            let samples = bench::run_store_op(&wiki, op, count).map_err(|e| e.to_string())?;
            print_summary(
                &format!("{op:?}").to_lowercase(),
                Summary::of(&samples),
                json,
            );
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Tools {
            root,
            wiki,
            op,
            count,
            fresh,
            query,
            json,
        } => bench_tools(&root, &wiki, op, count, fresh, query, json),
        BenchCommand::History {
            root,
            wiki,
            page,
            limit,
            count,
            open_only,
            json,
        } => {
            let name = WikiName::parse(&wiki).map_err(|e| e.to_string())?;
            let page = match page {
                Some(raw) => wikibot::store::PagePath::parse(&raw).map_err(|e| e.to_string())?,
                None => bench::bench_page(0, 1),
            };
            let started = std::time::Instant::now();
            let store = Store::new(StoreConfig::new(&root));
            let wiki = store.open(&name).map_err(|e| e.to_string())?;
            let open = started.elapsed();
            if open_only {
                return Ok(ExitCode::SUCCESS);
            }
            let timed = || {
                let started = std::time::Instant::now();
                wiki.history(Some(&page), limit)
                    .map(|commits| (started.elapsed(), commits.len()))
                    .map_err(|e| e.to_string())
            };
            let (first, found) = timed()?;
            let warm = (0..count)
                .map(|_| timed().map(|(elapsed, _)| elapsed))
                .collect::<Result<Vec<_>, _>>()?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"open_ms": millis(open), "first_ms": millis(first),
                        "commits": found, "warm": Summary::of(&warm)})
                );
            } else {
                println!(
                    "history({limit}) of '{page}': {found} commit(s); open {:.3} ms, first call {:.3} ms",
                    millis(open),
                    millis(first)
                );
                print_summary("warm", Summary::of(&warm), false);
            }
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Mcp {
            url,
            token,
            concurrency,
            seconds,
            json,
        } => {
            let duration = Duration::from_secs(seconds.max(1));
            let (sequential, concurrent) = block_on(async {
                let one = bench::mcp_echo_load(&url, token.as_deref(), 1, duration).await?;
                let many =
                    bench::mcp_echo_load(&url, token.as_deref(), concurrency, duration).await?;
                Ok::<_, String>((one, many))
            })??;
            for report in [sequential, concurrent] {
                if json {
                    println!("{}", serde_json::json!(report));
                } else {
                    println!(
                        "concurrency {}: {} requests ({} failed) in {:.1} s = {:.0} req/s",
                        report.concurrency,
                        report.requests,
                        report.failures,
                        report.seconds,
                        report.throughput_per_sec
                    );
                    print_summary("  latency", report.latency, false);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Cold {
            bootstrap,
            runs,
            event,
            function,
            json,
        } => {
            let event = load_event(&event)?;
            let spec = function_spec(&bootstrap, &function)?;
            let samples =
                block_on(bench::cold_starts(&spec, &event, runs))?.map_err(|e| e.to_string())?;
            let init: Vec<Duration> = samples.iter().map(|s| s.init).collect();
            let first: Vec<Duration> = samples.iter().map(|s| s.first_response).collect();
            print_summary("cold init (exec → first /next)", Summary::of(&init), json);
            print_summary(
                "cold start (exec → first response)",
                Summary::of(&first),
                json,
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn bench_tools(
    root: &Path,
    wiki: &str,
    op: bench::ToolOp,
    count: usize,
    fresh: bool,
    query: Option<String>,
    json: bool,
) -> CliResult {
    let name = WikiName::parse(wiki).map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let mut config = StoreConfig::from_env(root).map_err(|e| e.to_string())?;
    config.root = root.to_owned();
    config.maintain_after_loose_objects = 0;
    let store = Store::new(config);
    let wiki = store.open(&name).map_err(|e| {
        format!(
            "{e} (under {}; run `wikibot bench prepare --content wiki` first)",
            root.display()
        )
    })?;
    if fresh {
        let open = started.elapsed();
        let page =
            wikibot::store::PagePath::parse("Area 000/Page 00000").map_err(|e| e.to_string())?;
        let first = std::time::Instant::now();
        let query = query.unwrap_or_else(|| bench::bench_queries()[1].1.clone());
        let found = match op {
            bench::ToolOp::Search => wiki
                .search(wikibot::store::SearchRequest {
                    query: &query,
                    prefix: "",
                    limit: 10,
                })
                .map(|r| r.matches),
            bench::ToolOp::Links => wiki.links(&page).map(|l| l.incoming.len()),
            bench::ToolOp::List => wiki
                .list_pages(wikibot::store::ListRequest {
                    category: Some(bench::CATEGORIES[0]),
                    ..Default::default()
                })
                .map(|l| l.pages.len()),
            bench::ToolOp::Orphans => wiki.orphans("", 200).map(|o| o.total),
            bench::ToolOp::Write => {
                bench::bench_write(&wiki, &bench::bench_author(), 1, 1).map(|_| 1)
            }
        }
        .map_err(|e| e.to_string())?;
        let first = first.elapsed();
        let total = started.elapsed();
        let rss_mb = max_rss_bytes() as f64 / (1024.0 * 1024.0);
        if json {
            println!(
                "{}",
                serde_json::json!({"op": format!("{op:?}").to_lowercase(), "open_ms": millis(open),
                    "first_ms": millis(first), "total_ms": millis(total), "found": found,
                    "max_rss_mb": rss_mb})
            );
        } else {
            println!(
                "fresh {op:?}: open {:.3} ms, first call {:.3} ms, total {:.3} ms ({found} found; max RSS {rss_mb:.1} MB)",
                millis(open),
                millis(first),
                millis(total)
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let samples = bench::run_tool_op(&wiki, op, count).map_err(|e| e.to_string())?;
    let mut kinds: Vec<&str> = samples.iter().map(|(kind, _)| *kind).collect();
    kinds.dedup();
    kinds.sort();
    kinds.dedup();
    for kind in kinds {
        let timings: Vec<Duration> = samples
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, d)| *d)
            .collect();
        print_summary(kind, Summary::of(&timings), json);
    }
    Ok(ExitCode::SUCCESS)
}

/// The process's peak resident memory (getrusage), 0 if unknown.
fn max_rss_bytes() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } == 0;
    if !ok {
        return 0;
    }
    // SAFETY: initialised by the successful call above.
    let usage = unsafe { usage.assume_init() };
    u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024
}

fn print_summary(label: &str, summary: Option<Summary>, json: bool) {
    match (summary, json) {
        (None, _) => println!("{label}: no samples"),
        (Some(s), true) => println!("{}", serde_json::json!({ "label": label, "summary": s })),
        (Some(s), false) => println!(
            "{label}: n={} mean {:.3} ms, p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, min {:.3} ms, max {:.3} ms",
            s.count, s.mean_ms, s.p50_ms, s.p90_ms, s.p99_ms, s.min_ms, s.max_ms
        ),
    }
}
