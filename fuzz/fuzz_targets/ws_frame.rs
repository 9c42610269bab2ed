//! Fuzz target `ws_frame`: see [`livechat_fuzz::ws_frame`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| livechat_fuzz::ws_frame(data));
