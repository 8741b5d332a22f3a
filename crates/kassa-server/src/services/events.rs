use crate::error::{ApiError, ApiResult};
use crate::objects::event::Event;
use crate::services::validate;
use kassa_domain::ids::IdKind;
use kassa_store::sql::{Listed, Page};
use kassa_store::{Store, events};

pub async fn list(store: &Store, kind: Option<&str>, object: Option<&str>, page: &Page) -> ApiResult<Listed<Event>> {
    Ok(events::list(store.reader(), kind, object, page).await?.map(Event::from))
}

pub async fn get(store: &Store, id: &str) -> ApiResult<Event> {
    validate::id(IdKind::Event, "event", id)?;
    events::get(store.reader(), id).await?.map(Event::from).ok_or_else(|| ApiError::not_found("event", id))
}
