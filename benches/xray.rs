//! What X-Ray export costs an invocation: a handler span with the spans a warm git-probe
//! write opens (`git.commit`, inside it nothing else), recorded and sent as UDP datagrams to
//! a local socket, against the same spans with export off (unsampled).

use criterion::{Criterion, criterion_group, criterion_main};
use tracing_subscriber::prelude::*;
use wikibot::lambda::emulator::trace_header;
use wikibot::lambda::xray::{LocalDaemon, XrayLayer, finish, invocation_span};

fn invocation(header: Option<&str>) {
    let span = invocation_span(header, false);
    span.in_scope(|| {
        tracing::Span::current().record("op", "write");
        let _open = tracing::info_span!("git.open", wiki = "demo").entered();
        drop(_open);
        let _commit = tracing::info_span!("git.commit", wiki = "demo", page = "Home").entered();
    });
    finish(&span);
}

fn overhead(c: &mut Criterion) {
    let daemon = LocalDaemon::bind().expect("a UDP socket");
    let layer = XrayLayer::sending_to(daemon.address().expect("its address"));
    let subscriber = tracing_subscriber::registry().with(layer);
    let _guard = tracing::subscriber::set_default(subscriber);
    let sampled = trace_header(true);
    let unsampled = trace_header(false);
    let mut group = c.benchmark_group("x-ray export per invocation");
    group.bench_function("sampled (recorded and sent)", |b| {
        b.iter(|| invocation(Some(&sampled)))
    });
    group.bench_function("unsampled (nothing sent)", |b| {
        b.iter(|| invocation(Some(&unsampled)))
    });
    group.finish();
    // Keep the socket's buffer from filling up across runs.
    let _ = daemon.drain(std::time::Duration::from_millis(1));
}

criterion_group!(benches, overhead);
criterion_main!(benches);
