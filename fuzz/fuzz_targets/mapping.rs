//! Fuzz target: `cutover_engine::fuzzing::mapping` on any bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cutover_engine::fuzzing::mapping(data));
