//! The detection engine over arbitrary text, with every built-in detector of the shipped
//! `policies/base.yaml` on at once. Invariants: no panic; the spans are in order, disjoint, on
//! character boundaries; a rewrite happens exactly when there are spans; and detecting again
//! in the output finds nothing (the engine runs to a fixed point).
#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use consentgate::policy::{LoadOptions, PolicySet, Purpose};
use libfuzzer_sys::fuzz_target;

const DETECTORS: &str = "email, phone, card_number, iban, ipv4, ipv6, us_ssn, br_cpf, br_cnpj";

fn purpose() -> &'static Arc<Purpose> {
    static P: OnceLock<Arc<Purpose>> = OnceLock::new();
    P.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/base.yaml");
        std::fs::copy(base, dir.path().join("base.yaml")).expect("copy base.yaml");
        let all = format!(
            "region: all\nname: every detector\nextends: base\npurposes:\n  all:\n    basis: contract\n    fields: {{ deny: [] }}\n    redact:\n      - text: [{DETECTORS}]\n"
        );
        std::fs::write(dir.path().join("all.yaml"), all).expect("write all.yaml");
        let set = PolicySet::load_dir(dir.path(), &LoadOptions::default()).expect("policies");
        set.get("all").and_then(|p| p.purpose("all").cloned()).expect("purpose")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let p = purpose();
    let spans = p.detect_spans(text);
    let mut last = 0;
    for s in &spans {
        assert!(
            s.start >= last && s.end > s.start && s.end <= text.len(),
            "{spans:?}"
        );
        assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
        last = s.end;
    }
    let out = p.redact_str(text);
    assert_eq!(
        out.is_some(),
        !spans.is_empty(),
        "rewrite without spans or spans without rewrite"
    );
    if let Some(out) = out {
        assert!(
            p.redact_str(&out).is_none(),
            "a second pass found more in {out:?}"
        );
    }
});
