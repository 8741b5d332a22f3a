//! The API's objects as JSON shows them (and events record them), built from store rows.

pub mod billing;
pub mod catalog;
pub mod commerce;
pub mod credits;
pub mod customer;
pub mod event;
pub mod webhook_endpoint;

use std::collections::BTreeMap;

pub type Metadata = BTreeMap<String, String>;

/// Parses a metadata column; the store only ever writes what [`metadata_json`] produced.
pub fn parse_metadata(text: &str) -> Metadata {
    serde_json::from_str(text).unwrap_or_default()
}

pub fn metadata_json(m: &Metadata) -> String {
    serde_json::to_string(m).expect("maps of strings serialize")
}
