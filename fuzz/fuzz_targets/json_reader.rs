//! libFuzzer target: see `tests/fuzz/drive.rs` for what it drives, `benches/fuzz/run.sh` to run it.
#![no_main]

#[path = "../../tests/fuzz/drive.rs"]
mod drive;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    drive::json_reader(data);
});
