#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ouk_fuzz::dsse_plain(data));
