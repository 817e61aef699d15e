//! Key and value encoding for the sled trees.
//!
//! Tree `subjects` holds a subject's region and current consents side by side,
//! so the per-request lookup's two point reads land on the same page:
//! - `subject 0x00` → region;
//! - `subject 0x00 purpose` → current consent record (purposes are never
//!   empty, so the two kinds of key cannot collide).
//!
//! Tree `history`: `subject 0x00 u64-big-endian-counter` → receipt (consent or region).
//!
//! Validated subjects and purposes never contain `0x00`, so a prefix scan over
//! `subject 0x00` returns exactly that subject's rows, in key order.
//!
//! Values: one format byte, then the payload. Format `0x01`:
//! - region: the UTF-8 region name;
//! - consent: compact binary, read on every proxied request (see
//!   [`encode_consent`]); the purpose is not stored, it is the key's suffix;
//! - consent receipt: JSON.
//!
//! In `history`, format `0x02` is a region receipt (JSON). A build that predates region
//! receipts refuses it as an unknown format instead of misreading it.
//!
//! Any other format byte is an error, never read as "no value".

use serde::Serialize;
use time::OffsetDateTime;

use super::model::{ConsentRecord, ConsentStatus, Receipt, RegionReceipt};
use super::store::StoreError;

/// Separator between the subject and the rest of a key.
pub(crate) const SEP: u8 = 0x00;
/// Current value format: version 1.
pub(crate) const FORMAT_V1: u8 = 0x01;
/// A region receipt in the `history` tree.
pub(crate) const FORMAT_REGION_RECEIPT: u8 = 0x02;

/// Tree holding regions and current consents.
pub(crate) const SUBJECTS_TREE: &str = "subjects";
/// Tree holding receipts.
pub(crate) const HISTORY_TREE: &str = "history";

/// Kinds of stored value, as named in error messages.
pub(crate) const REGIONS: &str = "regions";
pub(crate) const CONSENTS: &str = "consents";
pub(crate) const HISTORY: &str = "history";

/// `subject 0x00`: the prefix of all of a subject's rows.
pub(crate) fn subject_prefix(subject: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(subject.len() + 1);
    key.extend_from_slice(subject.as_bytes());
    key.push(SEP);
    key
}

/// Key of the subject's region: `subject 0x00` (the subject prefix itself).
pub(crate) fn region_key(subject: &str) -> Vec<u8> {
    subject_prefix(subject)
}

/// `subject 0x00 purpose`.
pub(crate) fn consent_key(subject: &str, purpose: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(subject.len() + 1 + purpose.len());
    key.extend_from_slice(subject.as_bytes());
    key.push(SEP);
    key.extend_from_slice(purpose.as_bytes());
    key
}

/// `subject 0x00 counter` with the counter big-endian, so keys sort by counter.
pub(crate) fn history_key(subject: &str, counter: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(subject.len() + 9);
    key.extend_from_slice(subject.as_bytes());
    key.push(SEP);
    key.extend_from_slice(&counter.to_be_bytes());
    key
}

/// Encodes a value as format 1 JSON.
pub(crate) fn encode_json<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![FORMAT_V1];
    serde_json::to_writer(&mut out, value).map_err(StoreError::Encode)?;
    Ok(out)
}

/// One entry of the `history` tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HistoryEntry {
    /// A consent receipt.
    Consent(Receipt),
    /// A region receipt.
    Region(RegionReceipt),
}

/// Encodes a region receipt for the `history` tree.
pub(crate) fn encode_region_receipt(receipt: &RegionReceipt) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![FORMAT_REGION_RECEIPT];
    serde_json::to_writer(&mut out, receipt).map_err(StoreError::Encode)?;
    Ok(out)
}

/// Decodes one `history` value: a consent receipt (format 1) or a region receipt (format 2).
pub(crate) fn decode_history(bytes: &[u8]) -> Result<HistoryEntry, StoreError> {
    let corrupt = || StoreError::Corrupt { tree: HISTORY };
    match bytes.split_first() {
        Some((&FORMAT_V1, rest)) => serde_json::from_slice(rest)
            .map(HistoryEntry::Consent)
            .map_err(|_| corrupt()),
        Some((&FORMAT_REGION_RECEIPT, rest)) => serde_json::from_slice(rest)
            .map(HistoryEntry::Region)
            .map_err(|_| corrupt()),
        Some((&byte, _)) => Err(StoreError::UnknownFormat {
            tree: HISTORY,
            byte,
        }),
        None => Err(corrupt()),
    }
}

/// Encodes a region name.
pub(crate) fn encode_region(region: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(region.len() + 1);
    out.push(FORMAT_V1);
    out.extend_from_slice(region.as_bytes());
    out
}

/// Decodes a region name written by [`encode_region`].
pub(crate) fn decode_region(bytes: &[u8]) -> Result<String, StoreError> {
    let payload = payload(REGIONS, bytes)?;
    String::from_utf8(payload.to_vec()).map_err(|_| StoreError::Corrupt { tree: REGIONS })
}

/// Encodes a current-state record (format 1, big-endian integers):
/// `status u8` (1 granted, 2 denied, 3 withdrawn), `recorded_at`,
/// `has_expiry u8` (0/1) then `expires_at` when 1, `receipt_id` (u8 length +
/// UTF-8), `has_source u8` then `source` (u16 length + UTF-8) when 1.
/// A timestamp is `i64` unix seconds + `u32` nanoseconds (UTC).
pub(crate) fn encode_consent(record: &ConsentRecord) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(64 + record.source.as_ref().map_or(0, String::len));
    out.push(FORMAT_V1);
    out.push(match record.status {
        ConsentStatus::Granted => 1,
        ConsentStatus::Denied => 2,
        ConsentStatus::Withdrawn => 3,
    });
    push_time(&mut out, record.recorded_at);
    match record.expires_at {
        Some(t) => {
            out.push(1);
            push_time(&mut out, t);
        }
        None => out.push(0),
    }
    let id_len = u8::try_from(record.receipt_id.len()).map_err(|_| too_long())?;
    out.push(id_len);
    out.extend_from_slice(record.receipt_id.as_bytes());
    match &record.source {
        Some(source) => {
            let len = u16::try_from(source.len()).map_err(|_| too_long())?;
            out.push(1);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(source.as_bytes());
        }
        None => out.push(0),
    }
    Ok(out)
}

fn too_long() -> StoreError {
    StoreError::Encode(serde::ser::Error::custom(
        "field too long for the consent record format",
    ))
}

fn push_time(out: &mut Vec<u8>, t: OffsetDateTime) {
    out.extend_from_slice(&t.unix_timestamp().to_be_bytes());
    out.extend_from_slice(&t.nanosecond().to_be_bytes());
}

/// Decodes a record written by [`encode_consent`]; `purpose` comes from the key.
pub(crate) fn decode_consent(purpose: &str, bytes: &[u8]) -> Result<ConsentRecord, StoreError> {
    let mut r = Reader(payload(CONSENTS, bytes)?);
    decode_consent_fields(purpose, &mut r)
        .filter(|_| r.0.is_empty())
        .ok_or(StoreError::Corrupt { tree: CONSENTS })
}

fn decode_consent_fields(purpose: &str, r: &mut Reader<'_>) -> Option<ConsentRecord> {
    let status = match r.u8()? {
        1 => ConsentStatus::Granted,
        2 => ConsentStatus::Denied,
        3 => ConsentStatus::Withdrawn,
        _ => return None,
    };
    let recorded_at = r.time()?;
    let expires_at = match r.u8()? {
        0 => None,
        1 => Some(r.time()?),
        _ => return None,
    };
    let id_len = usize::from(r.u8()?);
    let receipt_id = r.text(id_len)?;
    let source = match r.u8()? {
        0 => None,
        1 => {
            let len = usize::from(u16::from_be_bytes(r.array()?));
            Some(r.text(len)?)
        }
        _ => return None,
    };
    Some(ConsentRecord {
        purpose: purpose.to_owned(),
        status,
        expires_at,
        source,
        recorded_at,
        receipt_id,
    })
}

/// Bounds-checked reading from the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    fn text(&mut self, len: usize) -> Option<String> {
        std::str::from_utf8(self.take(len)?).ok().map(str::to_owned)
    }

    fn time(&mut self) -> Option<OffsetDateTime> {
        let secs = i64::from_be_bytes(self.array()?);
        let nanos = u32::from_be_bytes(self.array()?);
        OffsetDateTime::from_unix_timestamp(secs)
            .ok()?
            .replace_nanosecond(nanos)
            .ok()
    }
}

fn payload<'a>(tree: &'static str, bytes: &'a [u8]) -> Result<&'a [u8], StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_V1, rest)) => Ok(rest),
        Some((&byte, _)) => Err(StoreError::UnknownFormat { tree, byte }),
        None => Err(StoreError::Corrupt { tree }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::consent::validate::{validate_purpose, validate_subject};
    use proptest::prelude::*;

    const SUBJECT: &str = "[A-Za-z0-9._:@-]{1,24}";
    const PURPOSE: &str = "[a-z][a-z0-9_]{0,12}";

    #[test]
    fn unknown_format_byte_is_an_error() {
        assert!(matches!(
            decode_region(&[0x02, b'e', b'u']),
            Err(StoreError::UnknownFormat {
                tree: REGIONS,
                byte: 0x02
            })
        ));
        assert!(matches!(
            decode_region(&[]),
            Err(StoreError::Corrupt { tree: REGIONS })
        ));
        assert_eq!(decode_region(&encode_region("eu")).unwrap(), "eu");
    }

    fn record(expires: bool, source: Option<&str>) -> ConsentRecord {
        ConsentRecord {
            purpose: "marketing".into(),
            status: ConsentStatus::Granted,
            expires_at: expires
                .then_some(time::macros::datetime!(2030-05-06 07:08:09.123456789 UTC)),
            source: source.map(str::to_owned),
            recorded_at: time::macros::datetime!(1999-12-31 23:59:59.5 UTC),
            receipt_id: "rcpt_00000000000000000042".into(),
        }
    }

    #[test]
    fn consent_binary_round_trip() {
        for r in [
            record(false, None),
            record(true, Some("web form ✓")),
            record(true, Some(&"é".repeat(256))),
        ] {
            let bytes = encode_consent(&r).unwrap();
            assert_eq!(decode_consent("marketing", &bytes).unwrap(), r);
        }
    }

    #[test]
    fn consent_binary_rejects_damage() {
        let bytes = encode_consent(&record(true, Some("x"))).unwrap();
        for cut in 1..bytes.len() {
            assert!(
                decode_consent("marketing", &bytes[..cut]).is_err(),
                "cut {cut}"
            );
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode_consent("marketing", &extra).is_err());
        let mut bad_status = bytes.clone();
        bad_status[1] = 9;
        assert!(decode_consent("marketing", &bad_status).is_err());
        let mut bad_format = bytes;
        bad_format[0] = 0x02;
        assert!(matches!(
            decode_consent("marketing", &bad_format),
            Err(StoreError::UnknownFormat {
                tree: CONSENTS,
                byte: 0x02
            })
        ));
    }

    proptest! {
        #[test]
        fn consent_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = decode_consent("p", &bytes);
        }
    }

    #[test]
    fn history_keys_sort_by_counter() {
        assert!(history_key("a", 255) < history_key("a", 256));
        assert!(history_key("a", u64::MAX) < history_key("a.", 0));
    }

    proptest! {
        #[test]
        fn distinct_pairs_never_share_a_key(
            s1 in SUBJECT, p1 in PURPOSE, s2 in SUBJECT, p2 in PURPOSE
        ) {
            prop_assert!(validate_subject(&s1).is_ok() && validate_purpose(&p1).is_ok());
            let same = s1 == s2 && p1 == p2;
            prop_assert_eq!(consent_key(&s1, &p1) == consent_key(&s2, &p2), same);
        }

        #[test]
        fn prefix_selects_exactly_one_subjects_rows(
            rows in proptest::collection::vec((SUBJECT, PURPOSE, any::<u64>()), 1..40),
            pick in any::<prop::sample::Index>()
        ) {
            let subject = &rows[pick.index(rows.len())].0;
            let prefix = subject_prefix(subject);
            for (s, p, n) in &rows {
                let consent = consent_key(s, p).starts_with(&prefix);
                let hist = history_key(s, *n).starts_with(&prefix);
                prop_assert_eq!(consent, s == subject);
                prop_assert_eq!(hist, s == subject);
            }
        }
    }
}
