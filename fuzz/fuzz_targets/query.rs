//! Fuzz target `query`: see [`livechat_fuzz::query`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| livechat_fuzz::query(data));
