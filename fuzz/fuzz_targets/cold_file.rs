//! The cold-file reader on arbitrary bytes: open (footer, page index, schema check), summary,
//! the id column, point lookups and scans, through `tiered_storage::fuzzing::cold_file_bytes`.
//! Errors are expected; a panic is a bug, with one documented exception.
//!
//! The library runs the Parquet reader inside `catch_unwind` and turns a panic there into
//! `Error::ColdFile`. libFuzzer's panic hook would abort on such a caught panic too, so this
//! target installs its own hook: a panic located in tiered-storage's own code aborts (a crash,
//! whether or not something catches it), a panic located elsewhere (the Parquet and Arrow
//! crates, std) is printed once per location and left to unwind: if the library catches it,
//! the input passes; if it escapes, libFuzzer's wrapper aborts and the input is a crash.
//! `FUZZ_STRICT_PANICS=1` keeps libFuzzer's hook: every panic, caught or not, is a crash.
#![no_main]

use std::collections::HashSet;
use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;

/// Whether a panic at `file` is in tiered-storage's own source (not a dependency or std).
fn ours(file: &str) -> bool {
    !(file.contains("/.cargo/registry/")
        || file.contains("/.cargo/git/")
        || file.starts_with("/rustc/")
        || file.contains("/library/std/")
        || file.contains("/library/core/")
        || file.contains("/library/alloc/"))
}

fn install_panic_hook() {
    if std::env::var_os("FUZZ_STRICT_PANICS").is_some_and(|v| v == "1") {
        return;
    }
    let seen: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
    let default_hook = std::panic::take_hook(); // libFuzzer's: prints, then aborts
    std::panic::set_hook(Box::new(move |info| {
        let file = info.location().map_or("", |l| l.file());
        if ours(file) {
            default_hook(info);
            return;
        }
        let at = info
            .location()
            .map_or_else(|| "?".to_owned(), |l| format!("{}:{}", l.file(), l.line()));
        if seen
            .lock()
            .map(|mut s| s.insert(at.clone()))
            .unwrap_or(false)
        {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            eprintln!("cold_file: dependency panic (left to the library's catch_unwind) at {at}: {message}");
        }
    }));
}

fuzz_target!(init: install_panic_hook(), |data: &[u8]| {
    let _ = tiered_storage::fuzzing::cold_file_bytes(data);
});
