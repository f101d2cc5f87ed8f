#![no_main]
//! Fuzz target: `wikibot::fuzzing::bearer_and_jwt` (see its documentation for what it checks).

libfuzzer_sys::fuzz_target!(|data: &[u8]| wikibot::fuzzing::bearer_and_jwt(data));
