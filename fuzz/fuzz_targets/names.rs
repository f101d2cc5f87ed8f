#![no_main]
//! Fuzz target: `wikibot::fuzzing::names` (see its documentation for what it checks).

libfuzzer_sys::fuzz_target!(|data: &[u8]| wikibot::fuzzing::names(data));
