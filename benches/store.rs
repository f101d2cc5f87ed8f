//! Criterion benchmarks of the page store on a maintained repository with 1,000 commits (100
//! pages of 4 KB): warm read, warm write, the last 50 commits, and one page's history. The dulwich comparison, syscall
//! counts and cold starts are in `checks/bench`, which prints them side by side.

use criterion::{Criterion, criterion_group, criterion_main};
use wikibot::bench::{RepoShape, bench_author, bench_page, bench_write, prepare_repo};
use wikibot::store::{Store, StoreConfig, WikiName};

fn store_operations(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let name = WikiName::parse("bench").expect("a valid name");
    let shape = RepoShape::default();
    prepare_repo(dir.path(), &name, shape, true).expect("benchmark repository");
    let store = Store::new(StoreConfig::new(dir.path()));
    let wiki = store.open(&name).expect("open");
    let page = bench_page(0, shape.pages);
    let author = bench_author();

    let mut group = c.benchmark_group("store (1,000 commits)");
    group.bench_function("read", |b| b.iter(|| wiki.read(&page).expect("read")));
    group.bench_function("history(50)", |b| {
        b.iter(|| wiki.history(None, 50).expect("history"))
    });
    group.bench_function("page history(50)", |b| {
        b.iter(|| wiki.history(Some(&page), 50).expect("page history"))
    });
    let mut n = 0usize;
    group.bench_function("write", |b| {
        b.iter(|| {
            n += 1;
            bench_write(&wiki, &author, n, shape.pages).expect("write")
        })
    });
    group.finish();
}

criterion_group!(benches, store_operations);
criterion_main!(benches);
