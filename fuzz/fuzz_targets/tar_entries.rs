#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ouk_fuzz::tar_entries(data));
