//! Stripe's form encoding with nested brackets: `metadata[kassa_cart_id]=…`,
//! `line_items[0][price_data][product_data][name]=…`.
//!
//! Written by hand: `serde_urlencoded` cannot nest, and `serde_qs` would need a serde type per
//! call plus `skip_serializing_if` on every field to keep out the parameters Stripe (and
//! localstripe, which answers 400 to any parameter it does not know) must not see. A list of
//! explicit pairs shows in one place exactly what each call sends; `url` does the escaping.

use crate::Metadata;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    pub(crate) fn new() -> Self {
        Form::default()
    }

    pub(crate) fn push(&mut self, key: impl Into<String>, value: impl ToString) -> &mut Self {
        self.pairs.push((key.into(), value.to_string()));
        self
    }

    pub(crate) fn push_opt(&mut self, key: impl Into<String>, value: Option<impl ToString>) -> &mut Self {
        if let Some(value) = value {
            self.push(key, value);
        }
        self
    }

    /// `prefix[key]=value` for every entry.
    pub(crate) fn push_map(&mut self, prefix: &str, map: &Metadata) -> &mut Self {
        for (k, v) in map {
            self.push(format!("{prefix}[{k}]"), v);
        }
        self
    }

    /// Asks Stripe to inline an expandable field (`expand[0]=latest_charge`).
    pub(crate) fn expand(&mut self, fields: &[&str]) -> &mut Self {
        for (i, field) in fields.iter().enumerate() {
            self.push(format!("expand[{i}]"), field);
        }
        self
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// `application/x-www-form-urlencoded`, also usable as a query string.
    pub(crate) fn encode(&self) -> String {
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.pairs {
            out.append_pair(k, v);
        }
        out.finish()
    }
}

/// `root[a][b]…` from path parts: `key("line_items", &["0", "price_data", "currency"])`.
pub(crate) fn key(root: &str, parts: &[&str]) -> String {
    let mut key = root.to_owned();
    for part in parts {
        key.push('[');
        key.push_str(part);
        key.push(']');
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_keys_are_bracketed_and_escaped() {
        let mut metadata = Metadata::new();
        metadata.insert("kassa_cart_id".into(), "cart_01 & co".into());
        let mut form = Form::new();
        form.push("amount", 1000)
            .push_opt("customer", Some("cus_1"))
            .push_opt("return_url", None::<&str>)
            .push_map("metadata", &metadata)
            .push(key("line_items", &["0", "price_data", "product_data", "name"]), "Tea")
            .expand(&["latest_charge"]);
        assert_eq!(
            form.encode(),
            "amount=1000&customer=cus_1&metadata%5Bkassa_cart_id%5D=cart_01+%26+co\
             &line_items%5B0%5D%5Bprice_data%5D%5Bproduct_data%5D%5Bname%5D=Tea&expand%5B0%5D=latest_charge"
        );
        let decoded: Vec<(String, String)> =
            url::form_urlencoded::parse(form.encode().as_bytes()).into_owned().collect();
        assert_eq!(decoded, form.pairs());
    }

    #[test]
    fn an_empty_form_encodes_to_nothing() {
        assert!(Form::new().is_empty());
        assert_eq!(Form::new().encode(), "");
    }
}
