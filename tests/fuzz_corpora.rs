//! Replays the fuzz targets' corpora (`fuzz/corpus/<target>/`, minimised after each fuzzing
//! run) through the same entry points the fuzzers drive, so every input a fuzzer once found
//! interesting stays a regression test on stable Rust, in CI.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target}: {} panicked", path.display());
        inputs += 1;
    }
    assert!(
        inputs > 0,
        "{target}: the corpus at {} is empty",
        dir.display()
    );
}

#[test]
fn page_and_wiki_names() {
    replay("names", wikibot::fuzzing::names);
}

#[test]
fn git_probe_events() {
    replay("git_probe_event", wikibot::fuzzing::git_probe_event);
}

#[test]
fn api_gateway_events() {
    replay("apigw_event", wikibot::fuzzing::apigw_event);
}

#[test]
fn bearer_headers_and_tokens() {
    replay("bearer_and_jwt", wikibot::fuzzing::bearer_and_jwt);
}
