//! `audit::verify` on an arbitrary segment file: never panics; a chain reported intact counts
//! every complete line as a record; a broken chain names the seq right after the last good one.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("consentgate-fuzz-audit-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = dir();
    std::fs::write(dir.join("00000000000000000001.jsonl"), data).expect("write segment");
    let report = consentgate::audit::verify(dir, None).expect("verify reads a readable dir");
    let complete = data.iter().filter(|&&b| b == b'\n').count() as u64;
    assert!(report.records <= complete);
    if report.ok {
        assert_eq!(
            report.records, complete,
            "intact chain must count every complete line"
        );
        assert_eq!(report.first_bad_seq, None);
        assert_eq!(report.reason, None);
    } else {
        assert_eq!(report.first_bad_seq, Some(report.records + 1));
        assert!(report.reason.is_some());
    }
});
