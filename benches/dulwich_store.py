"""The same warm store operations as `wikibot bench store`, done with dulwich.

dulwich is what the wikibot.io Python prototype used; `checks/bench` runs this on the same
repository in the same run and prints the ratio. Each operation mirrors the Rust store:

- read: resolve refs/heads/main, walk commit -> tree -> page blob, decode UTF-8;
- write: add a blob, update the trees on the page's path, add a commit, and move main by
  compare-and-swap (set_if_equals), retrying as the Rust store does;
- history: the last 50 commits along first parents.

One untimed operation warms up first (repository open, caches), as in the Rust command.
"""

import argparse
import json
import statistics
import sys
import time

from dulwich.object_store import commit_tree_changes, tree_lookup_path
from dulwich.objects import Blob, Commit
from dulwich.repo import Repo

MAIN = b"refs/heads/main"


def bench_page(n: int, pages: int) -> str:
    """Same page names as wikibot::bench::bench_page."""
    index = n % max(pages, 1)
    if pages > 100:
        return f"Area {index // 100:03}/Page {index:05}"
    return f"Page {index:03}" if index % 2 == 0 else f"Dev/Notes {index:03}"


def count_pages(repo: Repo) -> int:
    tree = repo[repo[repo.refs[MAIN]].tree]
    total = 0
    pending = [tree]
    while pending:
        current = pending.pop()
        for entry in current.items():
            obj = repo[entry.sha]
            if obj.type_name == b"tree":
                pending.append(obj)
            elif entry.path.endswith(b".md"):
                total += 1
    return total


def read(repo: Repo, page: str) -> str:
    commit = repo[repo.refs[MAIN]]
    _, blob_id = tree_lookup_path(repo.__getitem__, commit.tree, (page + ".md").encode())
    return repo[blob_id].data.decode("utf-8")


def write(repo: Repo, page: str, content: str) -> bytes:
    blob = Blob.from_string(content.encode("utf-8"))
    repo.object_store.add_object(blob)
    while True:
        tip = repo.refs[MAIN]
        parent = repo[tip]
        tree_id = commit_tree_changes(
            repo.object_store, repo[parent.tree], [((page + ".md").encode(), 0o100644, blob.id)]
        )
        commit = Commit()
        commit.tree = tree_id
        commit.parents = [tip]
        commit.author = commit.committer = b"Bench <bench@wikibot.invalid>"
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = b"Bench write\n"
        repo.object_store.add_object(commit)
        if repo.refs.set_if_equals(MAIN, tip, commit.id):
            return commit.id


def history(repo: Repo, limit: int = 50) -> list:
    commits = []
    next_id = repo.refs[MAIN]
    while next_id is not None and len(commits) < limit:
        commit = repo[next_id]
        commits.append((commit.id, commit.author, commit.commit_time, commit.message))
        next_id = commit.parents[0] if commit.parents else None
    return commits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="directory holding <wiki>.git")
    parser.add_argument("--wiki", default="bench")
    parser.add_argument("--op", choices=["read", "write", "history"], required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    repo = Repo(f"{args.root}/{args.wiki}.git")
    pages = count_pages(repo)
    read_page = bench_page(0, pages)

    def once(n: int) -> None:
        if args.op == "read":
            read(repo, read_page)
        elif args.op == "history":
            history(repo)
        else:
            write(repo, bench_page(n, pages), f"# Write {n}\n\n" + "dulwich text " * 80)

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
