//! A cache of verified tokens, keyed by the SHA-256 of the token, so a caller that reuses its
//! token is not charged a signature verification per request. Entries live until the token's
//! `exp` plus leeway; the cache is bounded (cleared whole when full) and never holds failures.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use super::Caller;

/// Most entries kept; a full cache is cleared rather than tracked for eviction.
const MAX_ENTRIES: usize = 16_384;

/// The cache key of a token.
pub(super) fn key(token: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

/// Seconds since the Unix epoch.
pub(super) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(u64::MAX)
}

/// A verified caller and the second its cache entry expires.
type Entry = (Arc<Caller>, u64);

#[derive(Default)]
pub(super) struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl TokenCache {
    /// The caller for `key` if cached and `now` is before its expiry.
    pub(super) fn get(&self, key: &[u8; 32], now: u64) -> Option<Arc<Caller>> {
        let entries = self.entries.lock().ok()?;
        match entries.get(key) {
            Some((caller, until)) if now < *until => Some(caller.clone()),
            _ => None,
        }
    }

    /// Remembers a verified caller until `until` (seconds since the epoch).
    pub(super) fn insert(&self, key: [u8; 32], caller: Arc<Caller>, until: u64) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(key, (caller, until));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Arc<Caller> {
        Arc::new(Caller {
            name: "a".into(),
            purposes: vec![],
            scopes: vec![],
        })
    }

    #[test]
    fn entries_expire_and_differ_by_token() {
        let cache = TokenCache::default();
        cache.insert(key("t1"), caller(), 100);
        assert!(cache.get(&key("t1"), 99).is_some());
        assert!(cache.get(&key("t1"), 100).is_none(), "expired at `until`");
        assert!(cache.get(&key("t2"), 50).is_none());
    }

    #[test]
    fn bounded() {
        let cache = TokenCache::default();
        for i in 0..(MAX_ENTRIES + 10) {
            cache.insert(key(&i.to_string()), caller(), u64::MAX);
        }
        assert!(cache.entries.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
