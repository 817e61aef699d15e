//! Checksum and validity rules that confirm a candidate before it is redacted. The built-in
//! detectors and the `validate:` option of custom patterns use these same functions, and both
//! read digits the same way: a decimal digit of any script counts as that digit (see
//! [`digit_value`](super::detect::digit_value)).

use serde::{Deserialize, Serialize};

use super::detect::{digit_value, fold};

/// A check a custom pattern's match must pass to count as a detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Validator {
    /// Payment card numbers: 13 to 19 digits, not starting with 0, a valid Luhn check digit
    /// (13-digit numbers starting with 1, which are millisecond timestamps, never count).
    Luhn,
    /// International bank account numbers: a country of the IBAN registry, that country's
    /// length and layout, and the ISO 13616 mod-97 check; letters in any case.
    Iban,
    /// Brazilian CPF: 11 digits with both check digits valid, not all digits equal.
    Cpf,
    /// Brazilian CNPJ: 14 digits with both check digits valid, not all digits equal.
    Cnpj,
    /// US social security numbers: 9 digits, area not 000, 666 or 900-999, group not 00,
    /// serial not 0000, not all digits equal.
    UsSsn,
}

/// Most characters a validated value can have (an IBAN has at most 34).
const MAX_CHARS: usize = 40;

impl Validator {
    /// Whether `text` (the regex match; everything but digits, and for IBANs letters, is
    /// ignored) passes the check.
    pub fn accepts(self, text: &str) -> bool {
        let mut buf = [0u8; MAX_CHARS];
        let mut n = 0;
        for c in text.chars() {
            let v = match self {
                Self::Iban => match fold(c) {
                    Some(f) if f.is_ascii_alphanumeric() => f.to_ascii_uppercase() as u8,
                    _ => continue,
                },
                _ => match digit_value(c) {
                    Some(d) => d,
                    None => continue,
                },
            };
            let Some(slot) = buf.get_mut(n) else {
                return false;
            };
            *slot = v;
            n += 1;
        }
        let s = buf.get(..n).unwrap_or_default();
        match self {
            Self::Luhn => card_number(s),
            Self::Iban => iban(s),
            Self::Cpf => cpf(s),
            Self::Cnpj => cnpj(s),
            Self::UsSsn => us_ssn(s),
        }
    }

    /// The validator's name as written in policies.
    pub fn name(self) -> &'static str {
        match self {
            Self::Luhn => "luhn",
            Self::Iban => "iban",
            Self::Cpf => "cpf",
            Self::Cnpj => "cnpj",
            Self::UsSsn => "us_ssn",
        }
    }

    /// Why a value fails this check, for `policy explain`.
    pub(crate) fn failure(self) -> &'static str {
        match self {
            Self::Luhn => "fails the Luhn check (or is not 13 to 19 digits)",
            Self::Iban => "is not a valid IBAN (country, length, layout or mod-97 check)",
            Self::Cpf => "fails the CPF check digits",
            Self::Cnpj => "fails the CNPJ check digits",
            Self::UsSsn => "breaks the SSN numbering rules",
        }
    }
}

/// The Luhn (mod 10) check over digit values.
pub(crate) fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
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

/// A payment card number: 13 to 19 digit values, first digit not 0, not a 13-digit number
/// starting with 1 (no card has that shape; millisecond timestamps do), Luhn-valid.
pub(crate) fn card_number(digits: &[u8]) -> bool {
    (13..=19).contains(&digits.len())
        && digits.first().is_some_and(|&d| d != 0)
        && !(digits.len() == 13 && digits.first() == Some(&1))
        && luhn(digits)
}

fn all_equal(digits: &[u8]) -> bool {
    digits.windows(2).all(|w| w.first() == w.get(1))
}

/// Brazilian CPF over 11 digit values.
pub(crate) fn cpf(ds: &[u8]) -> bool {
    if ds.len() != 11 || all_equal(ds) {
        return false;
    }
    let check = |n: usize| -> u8 {
        let sum: u32 = ds
            .iter()
            .take(n)
            .zip((2..=n as u32 + 1).rev())
            .map(|(&d, w)| u32::from(d) * w)
            .sum();
        let r = (sum * 10) % 11;
        if r == 10 { 0 } else { r as u8 }
    };
    ds.get(9) == Some(&check(9)) && ds.get(10) == Some(&check(10))
}

/// Brazilian CNPJ over 14 digit values.
pub(crate) fn cnpj(ds: &[u8]) -> bool {
    const W1: [u32; 12] = [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];
    const W2: [u32; 13] = [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];
    if ds.len() != 14 || all_equal(ds) {
        return false;
    }
    let check = |w: &[u32]| -> u8 {
        let sum: u32 = ds.iter().zip(w).map(|(&d, &w)| u32::from(d) * w).sum();
        let r = sum % 11;
        if r < 2 { 0 } else { (11 - r) as u8 }
    };
    ds.get(12) == Some(&check(&W1)) && ds.get(13) == Some(&check(&W2))
}

/// US social security number rules over 9 digit values: the SSA never issues area 000, 666
/// or 900-999, group 00 or serial 0000; all digits equal is not a number either. Numbers that
/// were published as examples (078-05-1120, 123-45-6789) still count: someone may use them.
pub(crate) fn us_ssn(ds: &[u8]) -> bool {
    let [a, b, c, d, e, f, g, h, i] = *ds else {
        return false;
    };
    let area = u32::from(a) * 100 + u32::from(b) * 10 + u32::from(c);
    area != 0
        && area != 666
        && area < 900
        && (d, e) != (0, 0)
        && (f, g, h, i) != (0, 0, 0, 0)
        && !all_equal(ds)
}

/// The IBAN registry: country code and the BBAN layout (`n` digits, `a` letters, `c` either),
/// from SWIFT's IBAN registry (release 101). The IBAN's length is 4 plus the layout's.
const IBAN_COUNTRIES: &[([u8; 2], &str)] = &[
    (*b"AD", "8n12c"),    // Andorra
    (*b"AE", "19n"),      // United Arab Emirates (The)
    (*b"AL", "8n16c"),    // Albania
    (*b"AT", "16n"),      // Austria
    (*b"AZ", "4a20c"),    // Azerbaijan
    (*b"BA", "16n"),      // Bosnia and Herzegovina
    (*b"BE", "12n"),      // Belgium
    (*b"BG", "4a6n8c"),   // Bulgaria
    (*b"BH", "4a14c"),    // Bahrain
    (*b"BI", "23n"),      // Burundi
    (*b"BR", "23n1a1c"),  // Brazil
    (*b"BY", "4c4n16c"),  // Belarus
    (*b"CH", "5n12c"),    // Switzerland
    (*b"CR", "18n"),      // Costa Rica
    (*b"CY", "8n16c"),    // Cyprus
    (*b"CZ", "20n"),      // Czechia
    (*b"DE", "18n"),      // Germany
    (*b"DJ", "23n"),      // Djibouti
    (*b"DK", "14n"),      // Denmark
    (*b"DO", "4c20n"),    // Dominican Republic
    (*b"EE", "16n"),      // Estonia
    (*b"EG", "25n"),      // Egypt
    (*b"ES", "20n"),      // Spain
    (*b"FI", "14n"),      // Finland
    (*b"FK", "2a12n"),    // Falkland Islands (Malvinas)
    (*b"FO", "14n"),      // Faroe Islands
    (*b"FR", "10n11c2n"), // France
    (*b"GB", "4a14n"),    // United Kingdom
    (*b"GE", "2a16n"),    // Georgia
    (*b"GI", "4a15c"),    // Gibraltar
    (*b"GL", "14n"),      // Greenland
    (*b"GR", "7n16c"),    // Greece
    (*b"GT", "24c"),      // Guatemala
    (*b"HN", "4a20n"),    // Honduras
    (*b"HR", "17n"),      // Croatia
    (*b"HU", "24n"),      // Hungary
    (*b"IE", "4a14n"),    // Ireland
    (*b"IL", "19n"),      // Israel
    (*b"IQ", "4a15n"),    // Iraq
    (*b"IS", "22n"),      // Iceland
    (*b"IT", "1a10n12c"), // Italy
    (*b"JO", "4a4n18c"),  // Jordan
    (*b"KW", "4a22c"),    // Kuwait
    (*b"KZ", "3n13c"),    // Kazakhstan
    (*b"LB", "4n20c"),    // Lebanon
    (*b"LC", "4a24c"),    // Saint Lucia
    (*b"LI", "5n12c"),    // Liechtenstein
    (*b"LT", "16n"),      // Lithuania
    (*b"LU", "3n13c"),    // Luxembourg
    (*b"LV", "4a13c"),    // Latvia
    (*b"LY", "21n"),      // Libya
    (*b"MC", "10n11c2n"), // Monaco
    (*b"MD", "20c"),      // Moldova, Republic of
    (*b"ME", "18n"),      // Montenegro
    (*b"MK", "3n10c2n"),  // North Macedonia
    (*b"MN", "16n"),      // Mongolia
    (*b"MR", "23n"),      // Mauritania
    (*b"MT", "4a5n18c"),  // Malta
    (*b"MU", "4a19n3a"),  // Mauritius
    (*b"NI", "4a20n"),    // Nicaragua
    (*b"NL", "4a10n"),    // Netherlands (The)
    (*b"NO", "11n"),      // Norway
    (*b"OM", "3n16c"),    // Oman
    (*b"PK", "4a16c"),    // Pakistan
    (*b"PL", "24n"),      // Poland
    (*b"PS", "4a21c"),    // Palestine, State of
    (*b"PT", "21n"),      // Portugal
    (*b"QA", "4a21c"),    // Qatar
    (*b"RO", "4a16c"),    // Romania
    (*b"RS", "18n"),      // Serbia
    (*b"RU", "14n15c"),   // Russian Federation
    (*b"SA", "2n18c"),    // Saudi Arabia
    (*b"SC", "4a20n3a"),  // Seychelles
    (*b"SD", "14n"),      // Sudan
    (*b"SE", "20n"),      // Sweden
    (*b"SI", "15n"),      // Slovenia
    (*b"SK", "20n"),      // Slovakia
    (*b"SM", "1a10n12c"), // San Marino
    (*b"SO", "19n"),      // Somalia
    (*b"ST", "21n"),      // Sao Tome and Principe
    (*b"SV", "4a20n"),    // El Salvador
    (*b"TL", "19n"),      // Timor-Leste
    (*b"TN", "20n"),      // Tunisia
    (*b"TR", "6n16c"),    // Turkiye
    (*b"UA", "6n19c"),    // Ukraine
    (*b"VA", "18n"),      // Holy See
    (*b"VG", "4a16n"),    // Virgin Islands (British)
    (*b"XK", "16n"),      // Kosovo
    (*b"YE", "4a4n18c"),  // Yemen
];

/// The registry layout of a country's BBAN.
fn iban_layout(cc: [u8; 2]) -> Option<&'static str> {
    IBAN_COUNTRIES
        .binary_search_by(|(c, _)| c.cmp(&cc))
        .ok()
        .and_then(|i| IBAN_COUNTRIES.get(i))
        .map(|(_, l)| *l)
}

/// Length of an IBAN of country `cc` (upper-case letters), if `cc` is in the registry.
pub(crate) fn iban_length(cc: [u8; 2]) -> Option<usize> {
    let layout = iban_layout(cc)?;
    Some(4 + layout_parts(layout).map(|(n, _)| n).sum::<usize>())
}

fn layout_parts(layout: &str) -> impl Iterator<Item = (usize, u8)> + '_ {
    let mut rest = layout.as_bytes();
    std::iter::from_fn(move || {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (num, tail) = rest.split_at(digits);
        let (&kind, tail) = tail.split_first()?;
        rest = tail;
        let n = num
            .iter()
            .fold(0usize, |acc, &d| acc * 10 + usize::from(d - b'0'));
        Some((n, kind))
    })
}

/// An IBAN over ASCII letters (upper case) and digits, separators removed.
pub(crate) fn iban(chars: &[u8]) -> bool {
    let (Some(&c0), Some(&c1)) = (chars.first(), chars.get(1)) else {
        return false;
    };
    let Some(layout) = iban_layout([c0.to_ascii_uppercase(), c1.to_ascii_uppercase()]) else {
        return false;
    };
    let Some((head, bban)) = chars.split_at_checked(4) else {
        return false;
    };
    if !head
        .get(2..)
        .is_some_and(|k| k.iter().all(u8::is_ascii_digit))
    {
        return false;
    }
    let mut at = 0;
    for (n, kind) in layout_parts(layout) {
        let Some(part) = bban.get(at..at + n) else {
            return false;
        };
        let ok = part.iter().all(|b| match kind {
            b'n' => b.is_ascii_digit(),
            b'a' => b.is_ascii_alphabetic(),
            _ => b.is_ascii_alphanumeric(),
        });
        if !ok {
            return false;
        }
        at += n;
    }
    if at != bban.len() {
        return false;
    }
    // The number read digit by digit (letters as two), reduced mod 97 only when it could
    // overflow: below 10^15, appending two digits stays far within u64.
    let mut rem: u64 = 0;
    for &b in bban.iter().chain(head) {
        let v = match b {
            b'0'..=b'9' => u64::from(b - b'0'),
            b'A'..=b'Z' => u64::from(b - b'A') + 10,
            b'a'..=b'z' => u64::from(b - b'a') + 10,
            _ => return false,
        };
        if rem >= 1_000_000_000_000_000 {
            rem %= 97;
        }
        rem = if v >= 10 { rem * 100 + v } else { rem * 10 + v };
    }
    rem % 97 == 1
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
        // A 13-digit number starting with 1 is a millisecond timestamp, not a card.
        assert!(luhn(&[1, 7, 4, 8, 5, 0, 3, 5, 4, 3, 0, 1, 2]));
        assert!(!Validator::Luhn.accepts("1748503543012"));
        assert!(Validator::Luhn.accepts("4222222222222"));
    }

    #[test]
    fn unicode_digits_are_digits_for_every_validator() {
        assert!(Validator::Luhn.accepts("４１１１ １１１１ １１１１ １１１１"));
        assert!(Validator::Luhn.accepts("٤١١١١١١١١١١١١١١١"));
        assert!(Validator::Iban.accepts("ＤＥ８９ ３７０４ ００４４ ０５３２ ０１３０ ００"));
        assert!(Validator::Cpf.accepts("５２９.９８２.２４７-２５"));
        assert!(Validator::UsSsn.accepts("०७८-०५-११२३"));
    }

    #[test]
    fn ibans() {
        assert!(Validator::Iban.accepts("DE89 3704 0044 0532 0130 00"));
        assert!(Validator::Iban.accepts("GB82WEST12345698765432"));
        assert!(Validator::Iban.accepts("gb82 west 1234 5698 7654 32"));
        assert!(!Validator::Iban.accepts("DE89 3704 0044 0532 0130 01"));
        assert!(!Validator::Iban.accepts("1289 3704 0044 0532 0130 00"));
        // Right checksum, wrong length for Germany.
        assert!(!Validator::Iban.accepts("DE62 3704 0044 0532 0130 0"));
        // Not a registry country.
        assert!(!Validator::Iban.accepts("AM47212110090000000235698740"));
        assert_eq!(iban_length(*b"DE"), Some(22));
        assert_eq!(iban_length(*b"NO"), Some(15));
        assert_eq!(iban_length(*b"LC"), Some(32));
        let mut sorted = IBAN_COUNTRIES.to_vec();
        sorted.sort();
        assert_eq!(sorted, IBAN_COUNTRIES);
    }

    #[test]
    fn cpfs_and_cnpjs() {
        assert!(Validator::Cpf.accepts("529.982.247-25"));
        assert!(Validator::Cpf.accepts("11144477735"));
        assert!(!Validator::Cpf.accepts("529.982.247-26"));
        assert!(!Validator::Cpf.accepts("111.111.111-11"));
        assert!(Validator::Cnpj.accepts("11.222.333/0001-81"));
        assert!(Validator::Cnpj.accepts("11444777000161"));
        assert!(!Validator::Cnpj.accepts("11.222.333/0001-82"));
        assert!(!Validator::Cnpj.accepts("00.000.000/0000-00"));
    }

    #[test]
    fn ssn_rules() {
        assert!(Validator::UsSsn.accepts("078-05-1123"));
        assert!(Validator::UsSsn.accepts("123-45-6789"));
        for bad in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "078-00-1123",
            "078-05-0000",
            "111-11-1111",
            "078-05-112",
        ] {
            assert!(!Validator::UsSsn.accepts(bad), "{bad}");
        }
    }
}
