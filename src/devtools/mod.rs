//! Developer tools: dev key material and dev tokens. Nothing here is for production.

pub mod certs;
pub mod token;
