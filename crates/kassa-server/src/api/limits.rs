//! The bounds of integer input that settings configure, kept true in the OpenAPI document.
//!
//! Every integer a request carries has a bound, declared on its schema (`minimum`/`maximum`)
//! and enforced by the use case with a 400 naming the parameter. Two of them are settings:
//! amounts (`checkout.max_amount`, default Stripe's eight digits) and the credits of one
//! top-up (`credits.max_credits`). The schemas carry the defaults; a server configured
//! otherwise documents its own values here.

use crate::config::Settings;
use kassa_domain::money::DEFAULT_MAX_AMOUNT;
use serde_json::Value;
use utoipa::openapi::OpenApi;

/// `doc` with the configured bounds in place of the defaults.
pub fn document(doc: OpenApi, settings: &Settings) -> OpenApi {
    let max_amount = settings.checkout.max_amount;
    let max_credits = settings.credits.max_credits;
    if max_amount == DEFAULT_MAX_AMOUNT && max_credits == Settings::default().credits.max_credits {
        return doc;
    }
    let mut value = serde_json::to_value(&doc).expect("the document serializes");
    replace_maximum(&mut value, DEFAULT_MAX_AMOUNT, max_amount);
    if let Some(credits) = value.pointer_mut("/components/schemas/TopUpInput/properties/credits") {
        credits["maximum"] = max_credits.into();
    }
    serde_json::from_value(value).expect("still an OpenAPI document")
}

/// Sets every `maximum` equal to `from` to `to` (amounts are the only bound of that value).
fn replace_maximum(value: &mut Value, from: i64, to: i64) {
    match value {
        Value::Object(map) => {
            if map.get("maximum").and_then(Value::as_i64) == Some(from) {
                map.insert("maximum".into(), to.into());
            }
            map.values_mut().for_each(|v| replace_maximum(v, from, to));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| replace_maximum(v, from, to)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kassa_domain::credits::MAX_CREDITS;
    use kassa_domain::money::{MAX_QUANTITY, MAX_STOCK};

    fn bounds(doc: &OpenApi, schema: &str, field: &str) -> (Option<i64>, Option<i64>) {
        let v = serde_json::to_value(doc).unwrap();
        let f = &v["components"]["schemas"][schema]["properties"][field];
        (f["minimum"].as_i64(), f["maximum"].as_i64())
    }

    /// The literals in the schema attributes are the constants the code enforces.
    #[test]
    fn documented_bounds_are_the_enforced_ones() {
        let settings = Settings::default();
        let doc = crate::api::openapi();
        assert_eq!(bounds(&doc, "CreatePrice", "unit_amount"), (Some(0), Some(DEFAULT_MAX_AMOUNT)));
        assert_eq!(bounds(&doc, "CreateShippingOption", "amount"), (Some(0), Some(DEFAULT_MAX_AMOUNT)));
        assert_eq!(bounds(&doc, "UpdateShippingOption", "amount"), (Some(0), Some(DEFAULT_MAX_AMOUNT)));
        assert_eq!(bounds(&doc, "CaptureInput", "amount"), (Some(1), Some(DEFAULT_MAX_AMOUNT)));
        assert_eq!(bounds(&doc, "RefundInput", "amount"), (Some(1), Some(DEFAULT_MAX_AMOUNT)));
        assert_eq!(bounds(&doc, "ItemInput", "quantity"), (Some(1), Some(MAX_QUANTITY)));
        assert_eq!(bounds(&doc, "UpdateLineInput", "quantity"), (Some(0), Some(MAX_QUANTITY)));
        assert_eq!(bounds(&doc, "InventoryInput", "quantity"), (Some(0), Some(MAX_STOCK)));
        assert_eq!(bounds(&doc, "TopUpInput", "credits"), (Some(1), Some(settings.credits.max_credits)));
        assert_eq!(bounds(&doc, "DebitInput", "amount"), (Some(1), Some(MAX_CREDITS)));
        assert_eq!(bounds(&doc, "AdjustInput", "amount"), (Some(-MAX_CREDITS), Some(MAX_CREDITS)));
        assert_eq!(
            bounds(&doc, "Recurring", "interval_count"),
            (Some(1), Some(crate::objects::catalog::MAX_INTERVAL_COUNT))
        );
    }

    #[test]
    fn configured_bounds_are_documented() {
        let mut settings = Settings::default();
        settings.checkout.max_amount = 5_000;
        settings.credits.max_credits = 70;
        let doc = document(crate::api::routes().split_for_parts().1, &settings);
        assert_eq!(bounds(&doc, "CreatePrice", "unit_amount"), (Some(0), Some(5_000)));
        assert_eq!(bounds(&doc, "RefundInput", "amount"), (Some(1), Some(5_000)));
        assert_eq!(bounds(&doc, "TopUpInput", "credits"), (Some(1), Some(70)));
        assert_eq!(bounds(&doc, "ItemInput", "quantity"), (Some(1), Some(MAX_QUANTITY)));
    }
}
