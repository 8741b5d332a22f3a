//! One processor call: the objects it read, the objects it changed and the events it recorded,
//! written at the end in one statement ([`db::apply`]) that checks nothing it read changed
//! meanwhile. Reads take no locks and no transaction is open across the call's logic; a call
//! whose write finds an object changed runs again (see `TestProcessor::close`).

use crate::db::{self as db, Applied, Guard, IdempotencyRow, KeptRow, NewEvent, ObjectRow, WriteRow, Writes};
use crate::objects::{self as o, API_VERSION, Stored};
use kassa_domain::ids::new_id;
use kassa_processors::ProcessorError;
use kassa_store::{Store, StoreError};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

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

/// The objects this process wrote last, as it wrote them (version included), so that a call
/// about them — a PaymentIntent confirmed with the ConfirmationToken and for the customer this
/// server just made — needs no read before its write. Never trusted blindly: a call that
/// starts from them checks their versions in its write like any read, and when one changed
/// (another server wrote it) the call runs again from the database.
#[derive(Default)]
pub(crate) struct Known {
    rows: Mutex<HashMap<String, ObjectRow>>,
}

/// Objects [`Known`] keeps at most; when full it starts afresh.
const KNOWN_CAPACITY: usize = 4096;

impl Known {
    /// All of these objects, or `None` when one is not known.
    fn get_all(&self, ids: &[&str]) -> Option<Vec<ObjectRow>> {
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        ids.iter().map(|id| rows.get(*id).cloned()).collect()
    }

    /// Keeps the objects a later call starts from without children: ConfirmationTokens,
    /// customers and payment methods (what a new PaymentIntent is made with).
    pub(crate) fn remember(&self, written: impl IntoIterator<Item = ObjectRow>) {
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        let kept = [o::ConfirmationToken::KIND, o::Customer::KIND, o::PaymentMethod::KIND];
        for row in written.into_iter().filter(|r| kept.contains(&r.kind.as_str())) {
            if rows.len() >= KNOWN_CAPACITY {
                rows.clear();
            }
            rows.insert(row.id.clone(), row);
        }
    }

    fn forget<'a>(&self, ids: impl IntoIterator<Item = &'a String>) {
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            rows.remove(id);
        }
    }
}

pub(crate) struct Work {
    store: Store,
    /// What this process wrote, to start from instead of reading (first attempts only).
    known: Arc<Known>,
    use_known: bool,
    pub now: i64,
    now_ms: i64,
    idempotency_key: Option<String>,
    /// Whether the key's stored result was looked up (with the first load).
    key_looked_up: bool,
    /// The key's stored result, found by a load: the call stops and answers with it.
    pub(crate) replayed: Option<IdempotencyRow>,
    /// Every row read or written so far, by id: reads after a write see the write.
    rows: BTreeMap<String, ObjectRow>,
    /// The version each row had when it was first read.
    read_versions: BTreeMap<String, i64>,
    /// Rows whose version the write checks: read with `lock`, or changed.
    guarded: BTreeSet<String>,
    changed: BTreeSet<String>,
    events: Vec<NewEvent>,
}

impl Work {
    /// A call's attempt; `use_known` lets it start from the objects this process wrote.
    pub fn begin(
        store: &Store,
        known: &Arc<Known>,
        use_known: bool,
        now: i64,
        now_ms: i64,
        idempotency_key: Option<&str>,
    ) -> Work {
        Work {
            store: store.clone(),
            known: known.clone(),
            use_known,
            now,
            now_ms,
            idempotency_key: idempotency_key.map(str::to_string),
            key_looked_up: false,
            replayed: None,
            rows: BTreeMap::new(),
            read_versions: BTreeMap::new(),
            guarded: BTreeSet::new(),
            changed: BTreeSet::new(),
            events: Vec::new(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Reads these objects (and with `children` the objects hanging off them). With `lock` the
    /// call's write happens only if they are still as read then (what a row lock held until
    /// the end of the call would guarantee). The first load also looks up the call's
    /// idempotency key: when a result is stored under it, the call stops here
    /// ([`Work::replayed`]) and answers with that result.
    ///
    /// Objects read with `lock` (and no children) that this process wrote last are taken as it
    /// wrote them, without a read; the key is then not looked up before the write, which finds
    /// it taken if a result was stored under it (see `TestProcessor::close`).
    pub async fn load(&mut self, ids: &[&str], children: bool, lock: bool) -> Result<(), ProcessorError> {
        if self.use_known
            && lock
            && !children
            && !ids.is_empty()
            && let Some(rows) = self.known.get_all(ids)
        {
            self.key_looked_up = true;
            self.take(rows, lock);
            return Ok(());
        }
        let key = if self.key_looked_up { None } else { self.idempotency_key.as_deref() };
        let (rows, kept) = db::load(&self.store, ids, children, key).await.map_err(db_failed)?;
        self.key_looked_up = true;
        if let Some(kept) = kept {
            self.replayed = Some(kept);
            return Err(ProcessorError::Unavailable("a stored result answers this call".into()));
        }
        self.take(rows, lock);
        Ok(())
    }

    fn take(&mut self, rows: Vec<ObjectRow>, lock: bool) {
        for row in rows {
            self.read_versions.entry(row.id.clone()).or_insert(row.version);
            if lock {
                self.guarded.insert(row.id.clone());
            }
            if !self.changed.contains(&row.id) {
                self.rows.insert(row.id.clone(), row);
            }
        }
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
        let existing = self.rows.get(&id);
        let row = ObjectRow {
            id: id.clone(),
            kind: T::KIND.to_string(),
            customer: object.owner().map(str::to_string),
            parent,
            data: serde_json::to_string(object).expect("processor objects serialize"),
            created: existing.map_or(self.now, |r| r.created),
            updated: self.now,
            due_at: object.due_at(),
            version: existing.map_or(0, |r| r.version),
        };
        if self.read_versions.contains_key(&id) {
            self.guarded.insert(id.clone());
        }
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

    /// Writes everything the call did in one statement: the objects it changed and the
    /// events it recorded, with `result` (fingerprint, response) stored under the call's key,
    /// provided the objects it read are unchanged. A call that changed nothing and stores
    /// nothing writes nothing.
    pub async fn write(&self, result: Option<(&str, &str)>) -> Result<Applied, ProcessorError> {
        let idempotency: Vec<KeptRow<'_>> = match (self.idempotency_key.as_deref(), result) {
            (Some(key), Some((fingerprint, response))) => {
                vec![KeptRow { key, fingerprint, response, created: self.now }]
            }
            _ => Vec::new(),
        };
        if idempotency.is_empty() && self.changed.is_empty() && self.events.is_empty() {
            return Ok(Applied::Written);
        }
        let guards = self
            .guarded
            .iter()
            .filter_map(|id| self.read_versions.get(id).map(|&version| Guard { id, version }))
            .collect();
        let objects = self.changed.iter().filter_map(|id| self.rows.get(id)).map(WriteRow::from).collect();
        let writes = Writes { guards, idempotency, objects, events: &self.events };
        let applied = db::apply(&self.store, &writes).await.map_err(db_failed)?;
        match applied {
            // The rows as they are now: a row read counted up its version.
            Applied::Written => self.known.remember(self.changed.iter().filter_map(|id| self.rows.get(id)).map(|r| {
                let version = self.read_versions.get(&r.id).map_or(0, |v| v + 1);
                ObjectRow { version, ..r.clone() }
            })),
            Applied::Conflict => self.known.forget(&self.guarded),
            Applied::KeyTaken => {}
        }
        Ok(applied)
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
