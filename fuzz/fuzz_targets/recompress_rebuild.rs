#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ouk_fuzz::recompress_rebuild(data));
