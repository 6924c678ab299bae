//! libFuzzer target: see `tests/fuzz/drive.rs` for what it drives, `benches/fuzz/run.sh` to run it.
#![no_main]

#[path = "../../tests/fuzz/drive.rs"]
mod drive;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        drive::fhirpath(text);
    }
});
