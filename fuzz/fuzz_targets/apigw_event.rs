#![no_main]
//! Fuzz target: `wikibot::fuzzing::apigw_event` (see its documentation for what it checks).

libfuzzer_sys::fuzz_target!(|data: &[u8]| wikibot::fuzzing::apigw_event(data));
