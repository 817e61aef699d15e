//! The streaming minimiser against its oracle, the tree walk, on arbitrary bytes, for every
//! purpose of the shipped `eu` policy (the first byte picks one). Whenever serde_json reads the
//! input, the stream must release the same JSON value with the same outcome (removed paths,
//! redaction counts), unless it refuses a duplicate key that the strict reader also refuses;
//! whenever serde_json refuses the input, the stream must refuse it too.
#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use consentgate::policy::{LoadOptions, Policy, PolicySet, Purpose};
use consentgate::redact::StreamError;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn purposes() -> &'static [Arc<Purpose>] {
    static P: OnceLock<Vec<Arc<Purpose>>> = OnceLock::new();
    P.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        let opts = LoadOptions {
            hash_key: Some(b"consentgate-fuzz-hash-key-0123456789".to_vec()),
            required_regions: Vec::new(),
        };
        let set = PolicySet::load_dir(&dir, &opts).unwrap_or_else(|e| panic!("policies: {e}"));
        let eu: Arc<Policy> = set.get("eu").expect("eu policy");
        eu.purposes.values().cloned().collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, input)) = data.split_first() else {
        return;
    };
    let all = purposes();
    let purpose = &all[usize::from(pick) % all.len()];
    let mut out = Vec::new();
    let stream = purpose.minimise_json(input, &mut out);
    match (stream, serde_json::from_slice::<Value>(input)) {
        (Ok(outcome), Ok(mut doc)) => {
            assert_eq!(outcome, purpose.apply(&mut doc), "outcome");
            let released: Value = serde_json::from_slice(&out).expect("stream output is JSON");
            assert_eq!(released, doc, "released value");
        }
        (Err(StreamError::DuplicateKey), Ok(_)) => {
            assert!(
                consentgate::json::check(input).is_err(),
                "duplicate claimed"
            );
        }
        (Err(e), Ok(_)) => panic!("stream refused what serde_json reads: {e}"),
        (Ok(_), Err(e)) => panic!("stream accepted what serde_json refuses: {e}"),
        (Err(_), Err(_)) => {}
    }
});
