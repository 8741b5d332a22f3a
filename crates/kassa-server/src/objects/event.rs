use kassa_store::events::EventRow;
use serde::Serialize;
use utoipa::ToSchema;

/// Something that happened, recorded in the transaction that made it happen.
#[derive(Debug, Serialize, ToSchema)]
pub struct Event {
    pub id: String,
    /// Always `event`.
    pub object: &'static str,
    /// `customer.created`, `order.created`, `payment.succeeded`, `credits.added`, …
    #[serde(rename = "type")]
    pub kind: String,
    pub created: i64,
    pub data: EventData,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventData {
    /// The object after the change.
    #[schema(value_type = Object)]
    pub object: serde_json::Value,
}

impl From<EventRow> for Event {
    fn from(r: EventRow) -> Self {
        Event {
            id: r.id,
            object: "event",
            kind: r.kind,
            created: r.created,
            data: EventData { object: serde_json::from_str(&r.data).unwrap_or(serde_json::Value::Null) },
        }
    }
}
