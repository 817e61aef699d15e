//! The data controller named on receipts: the `[controller]` table of the gateway config.

use serde::{Deserialize, Serialize};

/// The data controller named on Kantara receipts and ISO/IEC TS 27560 records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Controller {
    /// Legal name of the controller.
    pub name: String,
    /// Contact person or office (for example the data protection officer).
    pub contact: String,
    /// Postal address (`[controller.address]`).
    pub address: Address,
    /// Contact e-mail.
    pub email: String,
    /// Contact phone number.
    pub phone: String,
    /// Jurisdiction of the controller, for example `EU` or `US-CA`.
    pub jurisdiction: String,
    /// URL of the privacy notice (`http://` or `https://`).
    pub policy_url: String,
    /// Name of the service the consents are for.
    pub service: String,
    /// Language of receipts: an ISO 639-1 two-letter code (default `en`).
    #[serde(default = "default_language")]
    pub language: String,
}

/// A postal address (schema.org `PostalAddress`); `street` and `country` are required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// Street and number.
    pub street: String,
    /// City or town.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// State or province.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// Country (ISO 3166-1 alpha-2 code or name).
    pub country: String,
}

fn default_language() -> String {
    "en".to_owned()
}

/// Longest value of any `[controller]` key.
const MAX_LEN: usize = 512;

impl Controller {
    /// Checks every value; the error names the key (`controller.email`) and says what to fix.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let texts = [
            ("name", Some(&self.name)),
            ("contact", Some(&self.contact)),
            ("email", Some(&self.email)),
            ("phone", Some(&self.phone)),
            ("jurisdiction", Some(&self.jurisdiction)),
            ("policy_url", Some(&self.policy_url)),
            ("service", Some(&self.service)),
            ("address.street", Some(&self.address.street)),
            ("address.locality", self.address.locality.as_ref()),
            ("address.region", self.address.region.as_ref()),
            ("address.postal_code", self.address.postal_code.as_ref()),
            ("address.country", Some(&self.address.country)),
        ];
        let bad = |key: &str, why: &str| Err((format!("controller.{key}"), why.to_owned()));
        for (key, value) in texts {
            if let Some(v) = value
                && (v.trim().is_empty()
                    || v.chars().count() > MAX_LEN
                    || v.chars().any(char::is_control))
            {
                return bad(
                    key,
                    "must be 1 to 512 characters of printable text; receipts show it to data subjects",
                );
            }
        }
        let email_ok = self.email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !self.email.contains(char::is_whitespace)
        });
        if !email_ok {
            return bad(
                "email",
                "must be an e-mail address like privacy@example.com",
            );
        }
        let url_ok = ["https://", "http://"].iter().any(|scheme| {
            self.policy_url
                .strip_prefix(scheme)
                .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace))
        });
        if !url_ok {
            return bad(
                "policy_url",
                "must be the http:// or https:// URL of the privacy notice",
            );
        }
        if self.language.len() != 2 || !self.language.bytes().all(|b| b.is_ascii_lowercase()) {
            return bad(
                "language",
                "must be an ISO 639-1 two-letter code in lower case, like \"en\" or \"de\"",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A valid controller for tests.
    pub(crate) fn controller() -> Controller {
        serde_json::from_value(json!({
            "name": "Example Ltd", "contact": "DPO",
            "address": {"street": "1 Main St", "locality": "Dublin", "postal_code": "D01 F5P2", "country": "IE"},
            "email": "dpo@example.com", "phone": "+353 1 555 0100", "jurisdiction": "EU",
            "policy_url": "https://example.com/privacy", "service": "Example Shop"
        }))
        .unwrap()
    }

    #[test]
    fn validates_every_key() {
        assert_eq!(controller().validate(), Ok(()));
        type Breaker = fn(&mut Controller);
        let cases: [(&str, Breaker); 6] = [
            ("controller.email", |c| c.email = "not-an-address".into()),
            ("controller.policy_url", |c| {
                c.policy_url = "example.com/privacy".into()
            }),
            ("controller.language", |c| c.language = "EN".into()),
            ("controller.name", |c| c.name = "  ".into()),
            ("controller.address.country", |c| {
                c.address.country = String::new()
            }),
            ("controller.address.locality", |c| {
                c.address.locality = Some("a\nb".into())
            }),
        ];
        for (key, break_it) in cases {
            let mut c = controller();
            break_it(&mut c);
            assert_eq!(c.validate().unwrap_err().0, key);
        }
    }

    #[test]
    fn unknown_keys_and_a_string_address_are_refused() {
        let mut v = serde_json::to_value(controller()).unwrap();
        v["colour"] = json!("red");
        assert!(serde_json::from_value::<Controller>(v).is_err());
        let mut v = serde_json::to_value(controller()).unwrap();
        v["address"] = json!("1 Main St, Dublin");
        assert!(serde_json::from_value::<Controller>(v).is_err());
    }
}
