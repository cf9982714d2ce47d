#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ouk_fuzz::mirror_stream_delta(data));
