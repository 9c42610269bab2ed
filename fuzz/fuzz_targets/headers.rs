//! Fuzz target `headers`: see [`livechat_fuzz::headers`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| livechat_fuzz::headers(data));
