//! `consentgate demo`: the sample upstream, dev keys, and curl commands to try.

pub mod data;
pub mod seed;
pub mod traffic;
pub mod upstream;
