//! The demo's sample customers: realistic personal data across the `eu`, `us-ca` and `br`
//! regions (all invented; card numbers are public test numbers).

use serde_json::{Value, json};

/// One sample customer: id, region, and the document the upstream serves.
pub struct Customer {
    /// Subject id.
    pub id: &'static str,
    /// Region stored for the subject.
    pub region: &'static str,
    /// Full document.
    pub doc: Value,
}

/// All sample customers.
pub fn customers() -> Vec<Customer> {
    vec![
        Customer {
            id: "c-1001",
            region: "eu",
            doc: json!({
                "id": "c-1001", "first_name": "Anna", "last_name": "Schmidt",
                "email": "anna.schmidt@example.eu", "phone": "+49 30 1234567", "date_of_birth": "1987-04-12",
                "address": {"street": "Hauptstr. 5", "city": "Berlin", "postcode": "10115", "country": "DE"},
                "region": "eu", "preferences": {"newsletter": true, "language": "de"},
                "payment": {"card_number": "4111 1111 1111 1111", "iban": "DE89 3704 0044 0532 0130 00"},
                "orders": [
                    {"id": "o-5001", "sku": "SKU-1234", "total": 42.5, "placed_at": "2026-10-02T09:14:00Z",
                     "shipping_address": {"street": "Hauptstr. 5", "city": "Berlin", "postcode": "10115", "country": "DE"}},
                    {"id": "o-5002", "sku": "SKU-9876", "total": 12.0, "placed_at": "2026-11-01T17:40:00Z",
                     "shipping_address": {"street": "Hauptstr. 5", "city": "Berlin", "postcode": "10115", "country": "DE"}}
                ],
                "support_notes": "Customer called from +49 30 1234567 about card 4111 1111 1111 1111, email anna.schmidt@example.eu"
            }),
        },
        Customer {
            id: "c-1002",
            region: "eu",
            doc: json!({
                "id": "c-1002", "first_name": "Luc", "last_name": "Martin",
                "email": "luc.martin@example.fr", "phone": "+33 1 42 68 53 00", "date_of_birth": "1990-09-30",
                "address": {"street": "12 rue de Rivoli", "city": "Paris", "postcode": "75004", "country": "FR"},
                "region": "eu", "preferences": {"newsletter": false, "language": "fr"},
                "payment": {"card_number": "5555 5555 5555 4444", "iban": "FR14 2004 1010 0505 0001 3M02 606"},
                "orders": [{"id": "o-5101", "sku": "SKU-2222", "total": 99.9, "placed_at": "2026-09-12T12:00:00Z",
                            "shipping_address": {"street": "12 rue de Rivoli", "city": "Paris", "postcode": "75004", "country": "FR"}}],
                "support_notes": "Asked to update IBAN FR14 2004 1010 0505 0001 3M02 606; reachable at luc.martin@example.fr"
            }),
        },
        Customer {
            id: "c-2001",
            region: "us-ca",
            doc: json!({
                "id": "c-2001", "first_name": "Maria", "last_name": "Garcia",
                "email": "maria.garcia@example.com", "phone": "(415) 555-0132", "date_of_birth": "1979-01-23",
                "address": {"street": "500 Market St", "city": "San Francisco", "postcode": "94105", "country": "US"},
                "region": "us-ca", "preferences": {"newsletter": true, "language": "en"},
                "ssn": "123-45-6789",
                "payment": {"card_number": "4012 8888 8888 1881"},
                "orders": [{"id": "o-6001", "sku": "SKU-3333", "total": 250.0, "placed_at": "2026-08-20T15:30:00Z",
                            "shipping_address": {"street": "500 Market St", "city": "San Francisco", "postcode": "94105", "country": "US"}}],
                "support_notes": "Verified identity with SSN 123-45-6789, callback (415) 555-0132",
                "last_login_ip": "203.0.113.45"
            }),
        },
        Customer {
            id: "c-2002",
            region: "us-ca",
            doc: json!({
                "id": "c-2002", "first_name": "James", "last_name": "Lee",
                "email": "james.lee@example.com", "phone": "+1 213 555 0199", "date_of_birth": "1995-06-02",
                "address": {"street": "1 Sunset Blvd", "city": "Los Angeles", "postcode": "90026", "country": "US"},
                "region": "us-ca", "preferences": {"newsletter": false, "language": "en"},
                "payment": {"card_number": "3782 822463 10005"},
                "orders": [],
                "support_notes": "Opted out of sale of data by phone.",
                "last_login_ip": "2001:db8::42"
            }),
        },
        Customer {
            id: "c-3001",
            region: "br",
            doc: json!({
                "id": "c-3001", "first_name": "João", "last_name": "Silva",
                "email": "joao.silva@example.com.br", "phone": "+55 11 91234-5678", "date_of_birth": "1985-12-01",
                "address": {"street": "Av. Paulista, 1000", "city": "São Paulo", "postcode": "01310-100", "country": "BR"},
                "region": "br", "preferences": {"newsletter": true, "language": "pt"},
                "cpf": "529.982.247-25",
                "payment": {"card_number": "4111 1111 1111 1111"},
                "orders": [{"id": "o-7001", "sku": "SKU-4444", "total": 75.3, "placed_at": "2026-07-07T10:10:00Z",
                            "shipping_address": {"street": "Av. Paulista, 1000", "city": "São Paulo", "postcode": "01310-100", "country": "BR"}}],
                "support_notes": "CPF 529.982.247-25 confirmed; e-mail joao.silva@example.com.br"
            }),
        },
    ]
}

/// The product catalogue (no personal data).
pub fn products() -> Value {
    json!({"products": [
        {"sku": "SKU-1234", "name": "Walnut desk lamp", "price": 42.5},
        {"sku": "SKU-9876", "name": "Linen notebook", "price": 12.0},
        {"sku": "SKU-2222", "name": "Espresso grinder", "price": 99.9},
        {"sku": "SKU-3333", "name": "Standing desk", "price": 250.0},
        {"sku": "SKU-4444", "name": "Ceramic mug set", "price": 75.3}
    ]})
}
