//! Fuzz target: `cutover_engine::fuzzing::schema` on any bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cutover_engine::fuzzing::schema(data));
