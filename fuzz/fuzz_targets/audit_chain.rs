//! A genuine hash chain of sealed records (optionally split over two segments, optionally
//! with a checkpoint), then one fuzz-chosen tampering. `audit::verify` must accept the chain
//! exactly when the complete lines are still, byte for byte, a prefix of the genuine chain
//! (and reach the checkpoint), and otherwise report the first differing position as
//! `first_bad_seq`. A checkpoint checked without a public key never makes the report ok.
#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use consentgate::audit::{
    AuditEntry, AuditRecord, Checkpoint, ConsentUsed, Decision, GENESIS_PREV, Signature, verify,
};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("consentgate-fuzz-chain-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    })
}

#[derive(Arbitrary, Debug)]
struct Fields {
    request_id: String,
    caller: Option<String>,
    subject: Option<String>,
    path: String,
    reason: String,
    status: u16,
    fields_removed: Vec<String>,
    redactions: BTreeMap<String, u64>,
    deny: bool,
}

#[derive(Arbitrary, Debug)]
enum Mutation {
    None,
    FlipByte { pos: u32, xor: u8 },
    SetByte { pos: u32, byte: u8 },
    InsertBytes { pos: u32, bytes: Vec<u8> },
    DeleteRange { pos: u32, len: u8 },
    DeleteLine(u8),
    SwapLines(u8, u8),
    DuplicateLine(u8),
    ReplaceLine(u8, Vec<u8>),
    Truncate(u32),
}

#[derive(Arbitrary, Debug)]
struct Input {
    records: Vec<Fields>,
    ts: String,
    mutation: Mutation,
    /// Split after this many lines into a second segment (when in range).
    split: Option<u8>,
    /// Checkpoint at this record (mod the count).
    checkpoint: Option<u8>,
}

fn entry(f: Fields) -> AuditEntry {
    AuditEntry {
        request_id: f.request_id,
        caller: f.caller,
        subject: f.subject,
        purpose: Some("support".into()),
        region: Some("eu".into()),
        route: Some("customers".into()),
        method: "GET".into(),
        path: f.path,
        decision: if f.deny {
            Decision::Deny
        } else {
            Decision::Allow
        },
        reason: f.reason,
        policy: None,
        consent: ConsentUsed::Granted,
        status: f.status,
        fields_removed: f.fields_removed,
        redactions: f.redactions,
        collection: None,
    }
}

/// Splits into lines, keeping the newline, like the verifier reads them.
fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

fn mutate(buf: Vec<u8>, m: Mutation) -> Vec<u8> {
    let n = buf.len();
    let at = |pos: u32, len: usize| (pos as usize) % len.max(1);
    match m {
        Mutation::None => buf,
        Mutation::FlipByte { pos, xor } => {
            let mut b = buf;
            let i = at(pos, n);
            b[i] ^= xor.max(1);
            b
        }
        Mutation::SetByte { pos, byte } => {
            let mut b = buf;
            let i = at(pos, n);
            b[i] = byte;
            b
        }
        Mutation::InsertBytes { pos, bytes } => {
            let mut b = buf;
            let i = at(pos, n + 1);
            b.splice(i..i, bytes.into_iter().take(64));
            b
        }
        Mutation::DeleteRange { pos, len } => {
            let mut b = buf;
            let i = at(pos, n);
            let end = (i + usize::from(len).max(1)).min(n);
            b.drain(i..end);
            b
        }
        Mutation::DeleteLine(k) => {
            let mut l = lines(&buf);
            let i = usize::from(k) % l.len();
            l.remove(i);
            l.concat()
        }
        Mutation::SwapLines(a, b) => {
            let mut l = lines(&buf);
            let (a, b) = (usize::from(a) % l.len(), usize::from(b) % l.len());
            l.swap(a, b);
            l.concat()
        }
        Mutation::DuplicateLine(k) => {
            let mut l = lines(&buf);
            let i = usize::from(k) % l.len();
            let copy = l[i].clone();
            l.insert(i + 1, copy);
            l.concat()
        }
        Mutation::ReplaceLine(k, mut bytes) => {
            let mut l = lines(&buf);
            let i = usize::from(k) % l.len();
            bytes.truncate(512);
            bytes.retain(|&b| b != b'\n');
            bytes.push(b'\n');
            l[i] = bytes;
            l.concat()
        }
        Mutation::Truncate(pos) => {
            let mut b = buf;
            b.truncate(at(pos, n + 1));
            b
        }
    }
}

fuzz_target!(|input: Input| {
    let Input {
        records,
        ts,
        mutation,
        split,
        checkpoint,
    } = input;
    if records.is_empty() {
        return;
    }
    let mut prev = GENESIS_PREV.to_owned();
    let mut genuine = Vec::new();
    for (i, f) in records.into_iter().take(8).enumerate() {
        let r = AuditRecord::seal(entry(f), i as u64 + 1, ts.clone(), prev, None);
        prev = r.hash.clone();
        genuine.push(r);
    }
    let n = genuine.len();
    let mut buf = Vec::new();
    for r in &genuine {
        let line = r.to_line();
        assert!(!line.contains('\n'), "a record line contains a newline");
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
    }
    let genuine_lines: Vec<Vec<u8>> = genuine
        .iter()
        .map(|r| {
            let line = r.to_line();
            serde_json::from_str::<Value>(&line).expect("sealed line is JSON");
            line.into_bytes()
        })
        .collect();
    let cp = checkpoint.map(|k| {
        let r = &genuine[usize::from(k) % n];
        Checkpoint {
            seq: r.seq,
            hash: r.hash.clone(),
            ts: ts.clone(),
            sig: String::new(),
            key_id: String::new(),
            alg: "ES256".into(),
            replica: None,
        }
    });

    let tampered = mutate(buf, mutation);

    // Lay out one or two segments.
    let dir = dir();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let _ = std::fs::remove_file(e.path());
    }
    let all = lines(&tampered);
    let split_at = split.map(usize::from).filter(|&s| s >= 1 && s < all.len());
    match split_at {
        Some(s) => {
            std::fs::write(dir.join("00000000000000000001.jsonl"), all[..s].concat()).expect("w");
            let name = format!("{:020}.jsonl", s + 1);
            std::fs::write(dir.join(name), all[s..].concat()).expect("w");
        }
        None => std::fs::write(dir.join("00000000000000000001.jsonl"), &tampered).expect("w"),
    }

    // The model: complete lines compared byte for byte with the genuine chain (the stored
    // bytes are what is verified, so an edit that parses the same is a change).
    let complete: Vec<&Vec<u8>> = all.iter().filter(|l| l.ends_with(b"\n")).collect();
    let first_diff = complete.iter().enumerate().find_map(|(i, l)| {
        let same = genuine_lines
            .get(i)
            .is_some_and(|g| &l[..l.len() - 1] == g.as_slice());
        (!same).then_some(i as u64 + 1)
    });
    let m = complete.len() as u64;

    let report = verify(dir, cp.as_ref()).expect("verify");
    match first_diff {
        Some(d) => {
            assert!(
                !report.ok,
                "tampering not detected (first change at seq {d}): {report:?}"
            );
            assert_eq!(report.first_bad_seq, Some(d), "{report:?}");
            assert_eq!(report.records, d - 1);
        }
        None => match &cp {
            Some(cp) if cp.seq > m => {
                assert!(!report.ok, "truncation below the checkpoint not detected");
                assert_eq!(report.first_bad_seq, Some(m + 1), "{report:?}");
                assert_eq!(report.records, m);
            }
            Some(_) => {
                // The chain holds, but the checkpoint's signature was not checked.
                assert!(!report.ok, "an unverified checkpoint was reported ok");
                assert_eq!(report.first_bad_seq, None, "{report:?}");
                assert_eq!(
                    report.checkpoint.as_ref().map(|c| c.signature),
                    Some(Signature::Unverified)
                );
                assert_eq!(report.records, m);
            }
            None => {
                assert!(
                    report.ok,
                    "an untouched prefix of the chain was rejected: {report:?}"
                );
                assert_eq!(report.records, m);
            }
        },
    }
});
