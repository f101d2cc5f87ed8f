"""The same store operations as `wikibot bench store`, done with the git CLI.

Every step is a fresh git process, as a person (or a script shelling out to git) would run
it; `checks/bench efs` runs this on the same repository as wikibot and dulwich:

- read: git cat-file -p main:<page>.md;
- write: hash-object -w (the page), rev-parse main (the old tip), read-tree into a temporary
  index (kept on local disk, outside the repository), update-index --cacheinfo (the page),
  write-tree, commit-tree -p <old tip>, update-ref refs/heads/main <new> <old tip> (refused
  if main moved: the compare-and-swap the Rust store does);
- history: git log -n 50 --format=%H main.

Same page names and output as benches/dulwich_store.py. One untimed operation first, as in
the other two (here it warms only the kernel's caches: every operation starts new
processes). Needs `git` on PATH.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

MAIN = "refs/heads/main"


def bench_page(n: int, pages: int) -> str:
    """Same page names as wikibot::bench::bench_page."""
    index = n % max(pages, 1)
    return f"Page {index:03}" if index % 2 == 0 else f"Dev/Notes {index:03}"


class Git:
    def __init__(self, git_dir: str, scratch: str):
        self.git_dir = git_dir
        self.env = dict(
            os.environ,
            GIT_CONFIG_NOSYSTEM="1",
            GIT_CONFIG_GLOBAL=os.devnull,
            GIT_AUTHOR_NAME="Bench",
            GIT_AUTHOR_EMAIL="bench@wikibot.invalid",
            GIT_COMMITTER_NAME="Bench",
            GIT_COMMITTER_EMAIL="bench@wikibot.invalid",
        )
        self.index_env = dict(self.env, GIT_INDEX_FILE=os.path.join(scratch, "index"))

    def run(self, *args: str, stdin: bytes | None = None, index: bool = False) -> str:
        result = subprocess.run(
            ["git", "--git-dir", self.git_dir, *args],
            input=stdin,
            capture_output=True,
            env=self.index_env if index else self.env,
        )
        if result.returncode != 0:
            raise SystemExit(f"git {' '.join(args)}: {result.stderr.decode(errors='replace')}")
        return result.stdout.decode()


def count_pages(git: Git) -> int:
    names = git.run("ls-tree", "-r", "--name-only", MAIN).splitlines()
    return sum(1 for name in names if name.endswith(".md"))


def read(git: Git, page: str) -> str:
    return git.run("cat-file", "-p", f"{MAIN}:{page}.md")


def write(git: Git, page: str, content: str) -> str:
    blob = git.run("hash-object", "-w", "--stdin", stdin=content.encode()).strip()
    old = git.run("rev-parse", "--verify", MAIN).strip()
    git.run("read-tree", old, index=True)
    git.run("update-index", "--add", "--cacheinfo", f"100644,{blob},{page}.md", index=True)
    tree = git.run("write-tree", index=True).strip()
    commit = git.run("commit-tree", tree, "-p", old, "-m", "Bench write").strip()
    git.run("update-ref", MAIN, commit, old)
    return commit


def history(git: Git, limit: int = 50) -> list:
    return git.run("log", "-n", str(limit), "--format=%H", MAIN).split()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="directory holding <wiki>.git")
    parser.add_argument("--wiki", default="bench")
    parser.add_argument("--op", choices=["read", "write", "history"], required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="git-cli-bench-") as scratch:
        git = Git(f"{args.root}/{args.wiki}.git", scratch)
        pages = count_pages(git)
        read_page = bench_page(0, pages)

        def once(n: int) -> None:
            if args.op == "read":
                read(git, read_page)
            elif args.op == "history":
                history(git)
            else:
                write(git, bench_page(n, pages), f"# Write {n}\n\n" + "git cli text " * 80)

        once(10**9)
        samples = []
        for n in range(args.count):
            started = time.perf_counter()
            once(n)
            samples.append((time.perf_counter() - started) * 1000)

    if not samples:
        print(f"{args.op}: no samples")
        return 0
    samples.sort()
    at = lambda q: round(samples[round((len(samples) - 1) * q)], 3)
    summary = {
        "count": len(samples),
        "mean_ms": round(statistics.fmean(samples), 3),
        "min_ms": at(0.0),
        "p50_ms": at(0.5),
        "p90_ms": at(0.9),
        "p99_ms": at(0.99),
        "max_ms": at(1.0),
    }
    if args.json:
        print(json.dumps({"label": args.op, "summary": summary}))
    else:
        print(f"{args.op}: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
