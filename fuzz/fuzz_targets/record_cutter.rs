#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ouk_fuzz::record_cutter(data));
