//! Fuzz target `token`: see [`livechat_fuzz::token`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| livechat_fuzz::token(data));
