//! The policy file format as written (serde), with source locations for error messages.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

use super::model::{Basis, ConsentMode, Mode, NonJson};
use crate::redact::Validator;

/// A YAML mapping kept in file order, with the location of every key.
pub(crate) struct Entries<V>(pub(crate) Vec<(Spanned<String>, V)>);

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of names to entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    out.push((k, map.next_value()?));
                }
                Ok(Entries(out))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Entries(Vec::new()))
            }
        }
        d.deserialize_map(V2(PhantomData))
    }
}

/// A whole policy file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    pub(crate) region: Spanned<String>,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) extends: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) mode: Option<Mode>,
    #[serde(default)]
    pub(crate) honor_gpc: Option<bool>,
    #[serde(default)]
    pub(crate) non_json: Option<NonJson>,
    #[serde(default)]
    pub(crate) receipt_retention: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) purposes: Entries<RawPurpose>,
    #[serde(default)]
    pub(crate) redactors: Entries<RawRedactor>,
}

/// One entry of `purposes`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPurpose {
    pub(crate) basis: Basis,
    #[serde(default)]
    pub(crate) consent: Option<Spanned<ConsentMode>>,
    #[serde(default)]
    pub(crate) gpc_opt_out: Option<Spanned<bool>>,
    #[serde(default)]
    pub(crate) mode: Option<Mode>,
    #[serde(default)]
    pub(crate) fields: Option<Spanned<RawFields>>,
    #[serde(default)]
    pub(crate) redact: Vec<Spanned<RawRedactRule>>,
    #[serde(default)]
    pub(crate) purpose_category: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub(crate) pii_category: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub(crate) spi_category: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub(crate) third_party: Option<Spanned<String>>,
}

/// `fields: {allow: [...]}` or `fields: {deny: [...]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFields {
    #[serde(default)]
    pub(crate) allow: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(crate) deny: Option<Vec<Spanned<String>>>,
}

/// One entry of a purpose's `redact` list.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRedactRule {
    #[serde(default)]
    pub(crate) fields: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(crate) with: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) text: Option<Vec<Spanned<String>>>,
}

/// One entry of `redactors`: a built-in `detector` or a regex `pattern`, and one action.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRedactor {
    #[serde(default)]
    pub(crate) pattern: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) detector: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) replace: Option<String>,
    #[serde(default)]
    pub(crate) mask: Option<RawMask>,
    #[serde(default)]
    pub(crate) hash: Option<Spanned<bool>>,
    #[serde(default)]
    pub(crate) validate: Option<Spanned<Validator>>,
}

/// `mask: {keep_last: N}`.
#[derive(Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMask {
    pub(crate) keep_last: usize,
}
