//! The TOML config loader on arbitrary text: `StorageConfig::from_toml_str`, then `validate()`.
//! Any outcome but a panic is fine. A config that loads must also write back to TOML and load
//! again to an equal config.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tiered_storage::StorageConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = StorageConfig::from_toml_str(text) else {
        return;
    };
    config
        .validate()
        .expect("a loaded config is valid (from_toml_str validates)");
    let _ = config.cold.target_file_bytes();
    let written = toml::to_string(&config).expect("a loaded config writes as TOML");
    let again = StorageConfig::from_toml_str(&written).expect("a written config loads");
    assert_eq!(
        again, config,
        "TOML round trip changed the config:\n{written}"
    );
});
