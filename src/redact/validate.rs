//! Checksum validators that confirm a regex match before it is redacted.

use serde::{Deserialize, Serialize};

/// A checksum a match must pass to count as a detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Validator {
    /// Payment card numbers: 12 to 19 digits with a valid Luhn check digit.
    Luhn,
    /// International bank account numbers: ISO 13616 mod-97 check.
    Iban,
    /// Brazilian CPF: 11 digits with both check digits valid, not all digits equal.
    Cpf,
}

impl Validator {
    /// Whether `text` (the regex match; separators are ignored) passes the check.
    pub fn accepts(self, text: &str) -> bool {
        match self {
            Self::Luhn => luhn(text),
            Self::Iban => iban(text),
            Self::Cpf => cpf(text),
        }
    }

    /// The validator's name as written in policies.
    pub fn name(self) -> &'static str {
        match self {
            Self::Luhn => "luhn",
            Self::Iban => "iban",
            Self::Cpf => "cpf",
        }
    }

    /// A cheap necessary condition on the whole string, checked before running the regex.
    pub(crate) fn may_occur_in(self, digits_in_string: usize) -> bool {
        match self {
            Self::Luhn => digits_in_string >= 12,
            Self::Iban => digits_in_string >= 2,
            Self::Cpf => digits_in_string >= 11,
        }
    }
}

fn digits(text: &str) -> impl Iterator<Item = u32> + '_ {
    text.chars().filter_map(|c| c.to_digit(10))
}

fn luhn(text: &str) -> bool {
    let ds: Vec<u32> = digits(text).collect();
    if !(12..=19).contains(&ds.len()) {
        return false;
    }
    let sum: u32 = ds
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn iban(text: &str) -> bool {
    let chars: Vec<char> = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if !(15..=34).contains(&chars.len()) {
        return false;
    }
    let (head, rest) = chars.split_at(4);
    if !head.iter().take(2).all(char::is_ascii_alphabetic)
        || !head.iter().skip(2).all(char::is_ascii_digit)
    {
        return false;
    }
    let mut rem: u32 = 0;
    for c in rest.iter().chain(head.iter()) {
        let Some(v) = c.to_digit(36) else {
            return false;
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn cpf(text: &str) -> bool {
    let ds: Vec<u32> = digits(text).collect();
    if ds.len() != 11 || ds.iter().all(|&d| Some(&d) == ds.first()) {
        return false;
    }
    let check = |n: usize| -> u32 {
        let sum: u32 = ds
            .iter()
            .take(n)
            .zip((2..=u32::try_from(n + 1).unwrap_or(2)).rev())
            .map(|(d, w)| d * w)
            .sum();
        let r = (sum * 10) % 11;
        if r == 10 { 0 } else { r }
    };
    ds.get(9) == Some(&check(9)) && ds.get(10) == Some(&check(10))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn luhn_cards() {
        assert!(Validator::Luhn.accepts("4111 1111 1111 1111"));
        assert!(Validator::Luhn.accepts("5500-0000-0000-0004"));
        assert!(!Validator::Luhn.accepts("4111 1111 1111 1112"));
        assert!(!Validator::Luhn.accepts("1234"));
    }

    #[test]
    fn ibans() {
        assert!(Validator::Iban.accepts("DE89 3704 0044 0532 0130 00"));
        assert!(Validator::Iban.accepts("GB82WEST12345698765432"));
        assert!(!Validator::Iban.accepts("DE89 3704 0044 0532 0130 01"));
        assert!(!Validator::Iban.accepts("1289 3704 0044 0532 0130 00"));
    }

    #[test]
    fn cpfs() {
        assert!(Validator::Cpf.accepts("529.982.247-25"));
        assert!(Validator::Cpf.accepts("11144477735"));
        assert!(!Validator::Cpf.accepts("529.982.247-26"));
        assert!(!Validator::Cpf.accepts("111.111.111-11"));
    }
}
