//! Tools for compliance officers; the CLI calls these. Each writes to `out` and returns the
//! exit code: 0 ok, 1 a check or test failed, 2 usage error.
//!
//! Without a configured secret, `hash` redactors use [`TEST_HASH_KEY`], so pseudonyms in
//! policy tests are stable but differ from production ones.

mod check;
mod diff;
mod explain;
mod test_runner;

pub use check::check;
pub use explain::{ListShape, explain, explain_list};
pub use test_runner::test;

/// The fixed hash key used by `policy check`, `policy test` and `policy explain`.
pub const TEST_HASH_KEY: &[u8] = b"consentgate-policy-test-key";

pub(crate) fn test_options() -> super::LoadOptions {
    super::LoadOptions {
        hash_key: Some(TEST_HASH_KEY.to_vec()),
        ..Default::default()
    }
}
