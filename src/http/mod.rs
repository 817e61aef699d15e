//! HTTP plumbing shared by the data plane and the admin API.

pub mod body;
pub mod client;
pub mod headers;

pub use body::{Body, BoxError, empty, full};
