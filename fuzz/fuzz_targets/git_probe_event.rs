#![no_main]
//! Fuzz target: `wikibot::fuzzing::git_probe_event` (see its documentation for what it checks).

libfuzzer_sys::fuzz_target!(|data: &[u8]| wikibot::fuzzing::git_probe_event(data));
