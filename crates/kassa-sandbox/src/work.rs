//! One processor call as one write transaction: the objects it read (locked), the objects it
//! changed and the events it recorded, written at the end in two statements.

use crate::db::{self as db, NewEvent, ObjectRow};
use crate::objects::{self as o, API_VERSION, Stored};
use kassa_domain::ids::new_id;
use kassa_processors::ProcessorError;
use kassa_store::{Store, StoreError, Tx};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// A database failure inside the processor: to its caller the processor failed, and the call
/// may be retried with the same idempotency key.
pub(crate) fn db_failed(e: StoreError) -> ProcessorError {
    ProcessorError::Unavailable(format!("the test processor's database failed: {e}"))
}

pub(crate) fn invalid(code: &str, param: Option<&str>, message: impl Into<String>) -> ProcessorError {
    ProcessorError::InvalidRequest {
        code: Some(code.into()),
        message: message.into(),
        param: param.map(str::to_string),
    }
}

/// `No such customer: 'cus_…'`, for an id given as a parameter.
pub(crate) fn no_such(kind: &str, param: &str, id: &str) -> ProcessorError {
    invalid("resource_missing", Some(param), format!("No such {kind}: '{id}'"))
}

pub(crate) struct Work {
    tx: Tx,
    pub now: i64,
    now_ms: i64,
    idempotency_key: Option<String>,
    /// Every row read or written so far, by id: reads after a write see the write.
    rows: BTreeMap<String, ObjectRow>,
    changed: BTreeSet<String>,
    events: Vec<NewEvent>,
}

impl Work {
    pub async fn begin(
        store: &Store,
        now: i64,
        now_ms: i64,
        idempotency_key: Option<&str>,
    ) -> Result<Work, ProcessorError> {
        Ok(Work {
            tx: store.begin().await.map_err(db_failed)?,
            now,
            now_ms,
            idempotency_key: idempotency_key.map(str::to_string),
            rows: BTreeMap::new(),
            changed: BTreeSet::new(),
            events: Vec::new(),
        })
    }

    pub fn tx(&mut self) -> &mut Tx {
        &mut self.tx
    }

    /// Reads these objects (and with `children` the objects hanging off them), locking them
    /// with `lock` until the end of the call.
    pub async fn load(&mut self, ids: &[&str], children: bool, lock: bool) -> Result<(), ProcessorError> {
        for row in db::load(&mut self.tx, ids, children, lock).await.map_err(db_failed)? {
            if !self.changed.contains(&row.id) {
                self.rows.insert(row.id.clone(), row);
            }
        }
        Ok(())
    }

    /// The object `id` as a `T`, if it was loaded and is of that kind.
    pub fn get<T: Stored>(&self, id: &str) -> Result<Option<T>, ProcessorError> {
        match self.rows.get(id) {
            Some(row) if row.kind == T::KIND => decode(row).map(Some),
            _ => Ok(None),
        }
    }

    /// The object `id` hangs off.
    pub fn parent_of(&self, id: &str) -> Option<String> {
        self.rows.get(id).and_then(|r| r.parent.clone())
    }

    /// Writes `object` at the end of the call. Its parent is what the object names, else the
    /// one it had.
    pub fn put<T: Stored>(&mut self, object: &T) {
        let parent = object.parent().map(str::to_string).or_else(|| self.parent_of(object.id()));
        self.put_row(object, parent);
    }

    /// Writes `object` hanging off `parent` (a checkout session's PaymentIntent).
    pub fn put_under<T: Stored>(&mut self, object: &T, parent: &str) {
        self.put_row(object, Some(parent.to_string()));
    }

    fn put_row<T: Stored>(&mut self, object: &T, parent: Option<String>) {
        let id = object.id().to_string();
        let created = self.rows.get(&id).map_or(self.now, |r| r.created);
        let row = ObjectRow {
            id: id.clone(),
            kind: T::KIND.to_string(),
            customer: object.owner().map(str::to_string),
            parent,
            data: serde_json::to_string(object).expect("processor objects serialize"),
            created,
            updated: self.now,
            due_at: object.due_at(),
        };
        self.rows.insert(id.clone(), row);
        self.changed.insert(id);
    }

    /// Records a Stripe event about `object` (as it is now), delivered from now on.
    pub fn emit<T: Serialize>(&mut self, kind: &str, object: &T) {
        let id = event_id();
        let event = o::Event {
            id: id.clone(),
            object: "event".into(),
            api_version: Some(API_VERSION.into()),
            created: self.now,
            livemode: false,
            pending_webhooks: 1,
            request: o::EventRequest { id: None, idempotency_key: self.idempotency_key.clone() },
            kind: kind.to_string(),
            data: o::EventData { object: serde_json::to_value(object).expect("processor objects serialize") },
        };
        self.events.push(NewEvent {
            id,
            kind: kind.to_string(),
            data: serde_json::to_string(&event).expect("events serialize"),
            created: self.now,
            next_attempt_at: self.now_ms,
        });
    }

    /// Writes what changed (one statement for the objects, one for the events) and leaves the
    /// transaction open for the caller's last statement.
    pub async fn flush(&mut self) -> Result<(), ProcessorError> {
        let rows: Vec<ObjectRow> = self.changed.iter().filter_map(|id| self.rows.get(id).cloned()).collect();
        db::upsert(self.tx.conn(), &rows).await.map_err(db_failed)?;
        db::insert_events(&mut self.tx, &self.events).await.map_err(db_failed)?;
        self.changed.clear();
        self.events.clear();
        Ok(())
    }

    pub async fn commit(self) -> Result<(), ProcessorError> {
        self.tx.commit().await.map_err(db_failed)
    }

    /// Undoes the call and lets go of its locks at once.
    pub async fn rollback(self) -> Result<(), ProcessorError> {
        self.tx.rollback().await.map_err(db_failed)
    }
}

/// `evt_…` ids that increase within this process even inside one millisecond, so that events
/// sort (and, without chaos, are delivered) in the order they happened.
fn event_id() -> String {
    static GENERATOR: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());
    let mut generator = GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match generator.generate() {
        Ok(ulid) => format!("evt_{}", ulid.to_string().to_ascii_lowercase()),
        // More than 2^80 ids in one millisecond: fall back to a plain random one.
        Err(_) => new_id("evt"),
    }
}

pub(crate) fn decode<T: Stored>(row: &ObjectRow) -> Result<T, ProcessorError> {
    serde_json::from_str(&row.data).map_err(|e| {
        ProcessorError::Unavailable(format!("the test processor's {} {} is malformed: {e}", row.kind, row.id))
    })
}
