//! Cursor pagination, as Stripe does it: `limit` (1–100, default 10), `starting_after` or
//! `ending_before` an object id; lists run newest first and say `has_more`.

use crate::error::{ApiError, ApiResult};
use crate::services::{Listed, Page};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// 1 to 100, default 10.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// An object id: the page starts after it.
    pub starting_after: Option<String>,
    /// An object id: the page ends before it.
    pub ending_before: Option<String>,
}

impl ListParams {
    pub fn page(&self) -> ApiResult<Page> {
        to_page(self.limit, &self.starting_after, &self.ending_before)
    }
}

pub fn to_page(limit: Option<i64>, starting_after: &Option<String>, ending_before: &Option<String>) -> ApiResult<Page> {
    let limit = limit.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit must be between 1 and 100."));
    }
    if starting_after.is_some() && ending_before.is_some() {
        return Err(ApiError::invalid("ending_before", "Pass starting_after or ending_before, not both."));
    }
    Ok(Page { limit, starting_after: starting_after.clone(), ending_before: ending_before.clone() })
}

/// A page of objects.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<T>,
    pub has_more: bool,
    /// The path this list lives at.
    pub url: String,
}

impl<T> List<T> {
    pub fn new(url: impl Into<String>, listed: Listed<T>) -> List<T> {
        List { object: "list", data: listed.data, has_more: listed.has_more, url: url.into() }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ShippingListParams {
    /// Only options of this region.
    pub region: Option<String>,
    /// 1 to 100, default 10.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    pub starting_after: Option<String>,
    pub ending_before: Option<String>,
}
