//! `PolicySet::load_dir` on a folder holding `base.yaml` (a light copy, `policy_base.yaml`)
//! and a fuzzed `eu.yaml`:
//! never panics; every error names a file of the folder, carries `file:line:column` text when
//! it has a position, and points at a line that exists; errors come sorted. An accepted policy
//! applies every purpose to a sample document without panicking.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use consentgate::policy::{LoadOptions, PolicySet};
use libfuzzer_sys::fuzz_target;

const SAMPLE: &str = r#"{"id":"c-1","first_name":"Anna","email":"anna@example.eu",
 "phone":"+49 30 1234567","payment":{"card_number":"4111 1111 1111 1111"},
 "notes":"call 030 1234567","orders":[{"id":1,"sku":"A","total":9.5}],"date_of_birth":"1987-04-12"}"#;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d =
            std::env::temp_dir().join(format!("consentgate-fuzz-policy-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        // A light stand-in for policies/base.yaml (same redactor names, cheap patterns):
        // the folder is re-loaded for every input, and compiling the real detectors made
        // this target run at 9 inputs/s.
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("policy_base.yaml");
        std::fs::copy(base, d.join("base.yaml")).expect("copy base.yaml");
        d
    })
}

fn opts() -> &'static LoadOptions {
    static O: OnceLock<LoadOptions> = OnceLock::new();
    O.get_or_init(|| LoadOptions {
        hash_key: Some(b"consentgate-fuzz-hash-key-0123456789".to_vec()),
        ..Default::default()
    })
}

fuzz_target!(|yaml: &str| {
    let dir = dir();
    std::fs::write(dir.join("eu.yaml"), yaml).expect("write eu.yaml");
    let line_count = yaml.split('\n').count() as u64;
    match PolicySet::load_dir(dir, opts()) {
        Err(errs) => {
            let errs = errs.errors();
            assert!(!errs.is_empty(), "an error result without errors");
            assert!(errs.windows(2).all(|w| w[0] <= w[1]), "errors not sorted");
            for e in errs {
                assert!(e.file == "eu.yaml" || e.file == "base.yaml", "{e:?}");
                assert!(!e.message.is_empty());
                let shown = e.to_string();
                if e.line > 0 {
                    let prefix = format!("{}:{}:{}: ", e.file, e.line, e.column);
                    assert!(shown.starts_with(&prefix), "{shown:?} lacks {prefix:?}");
                    if e.file == "eu.yaml" {
                        assert!(
                            e.line <= line_count + 1,
                            "line {} of {line_count}: {e:?}",
                            e.line
                        );
                    }
                } else {
                    assert!(shown.starts_with(&format!("{}: ", e.file)), "{shown:?}");
                }
            }
        }
        Ok(set) => {
            let eu = set.get("eu").expect("eu.yaml loaded as region eu");
            assert_eq!(eu.region, "eu");
            assert_eq!(eu.version.len(), 64);
            assert!(eu.version.bytes().all(|b| b.is_ascii_hexdigit()));
            assert!(eu.label().starts_with("eu@"));
            let sample: serde_json::Value = serde_json::from_str(SAMPLE).expect("sample");
            for purpose in eu.purposes.values() {
                let mut doc = sample.clone();
                let _ = purpose.apply(&mut doc);
                let _ = eu.effective_mode(purpose);
            }
        }
    }
});
