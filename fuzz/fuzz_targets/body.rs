//! Fuzz target `body`: see [`livechat_fuzz::body`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| livechat_fuzz::body(data));
