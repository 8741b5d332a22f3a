//! Checks shared by every use case's input.

use crate::error::{ApiError, ApiResult};
use crate::objects::Metadata;
use kassa_domain::money::{Amount, MoneyError};

/// A required, trimmed, non-empty text of at most `max` characters.
pub fn text(param: &str, value: &str, max: usize) -> ApiResult<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ApiError::invalid(param, format!("{param} must not be empty.")));
    }
    if v.chars().count() > max {
        return Err(ApiError::invalid(param, format!("{param} must be at most {max} characters.")));
    }
    Ok(v.to_string())
}

pub fn optional_text(param: &str, value: Option<&str>, max: usize) -> ApiResult<Option<String>> {
    value.map(|v| text(param, v, max)).transpose()
}

/// Stripe's metadata limits: 50 keys, keys up to 40 characters, values up to 500.
pub fn metadata(m: &Metadata) -> ApiResult<()> {
    if m.len() > 50 {
        return Err(ApiError::invalid("metadata", "metadata has at most 50 keys."));
    }
    for (k, v) in m {
        if k.is_empty() || k.chars().count() > 40 {
            return Err(ApiError::invalid(format!("metadata.{k}"), "Metadata keys have 1 to 40 characters."));
        }
        if v.chars().count() > 500 {
            return Err(ApiError::invalid(format!("metadata.{k}"), "Metadata values have at most 500 characters."));
        }
    }
    Ok(())
}

/// A non-negative amount in minor units of at most `max` (`checkout.max_amount`).
pub fn amount(param: &str, value: i64, max: i64) -> ApiResult<Amount> {
    if value > max {
        return Err(ApiError::InvalidRequest {
            code: "amount_too_large",
            message: format!("{param} must be at most {max} (minor units)."),
            param: Some(param.into()),
        });
    }
    Amount::new(value).map_err(|e| match e {
        MoneyError::Negative => ApiError::invalid(param, format!("{param} must not be negative.")),
        _ => ApiError::invalid(param, format!("{param} must be at most {max}.")),
    })
}

/// An integer within `range` (inclusive), else a 400 naming the parameter and the bounds.
pub fn int_in(param: &str, value: i64, range: std::ops::RangeInclusive<i64>) -> ApiResult<i64> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::invalid(param, format!("{param} must be between {} and {}.", range.start(), range.end())))
    }
}

/// An absolute http(s) URL (success and cancel URLs of checkout sessions).
pub fn http_url(param: &str, value: &str) -> ApiResult<String> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() && value.len() <= 2048 => {
            Ok(value.to_string())
        }
        _ => Err(ApiError::invalid(param, format!("{param} must be an absolute http(s) URL."))),
    }
}

/// An id of the expected kind; anything else cannot exist, so it is a 404 without a query.
pub fn id(kind: kassa_domain::ids::IdKind, what: &'static str, value: &str) -> ApiResult<()> {
    if kind.matches(value) { Ok(()) } else { Err(ApiError::not_found(what, value)) }
}
