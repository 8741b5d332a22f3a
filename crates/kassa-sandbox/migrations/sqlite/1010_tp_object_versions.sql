-- Every write of a processor object counts its version up. A processor call reads its objects
-- without locking them and writes everything it did in one statement that checks the versions
-- it read (optimistic concurrency): no transaction held across the call's logic, one round trip
-- for the write (kassa-sandbox, db::apply).
ALTER TABLE tp_objects ADD COLUMN version BIGINT NOT NULL DEFAULT 0;

-- SQLite has no data-modifying CTEs: the one statement is `INSERT INTO tp_writes (doc)`, whose
-- trigger does the writes the JSON document lists, all or none (a RAISE aborts the statement
-- and undoes what it did):
--   guards      [{id, version}]  every object read must still be at that version, else
--                                'tp_conflict' (the call runs again on fresh reads);
--   idempotency [{key, fingerprint, response, created}]  at most one stored result; a key
--                                stored already is 'tp_idempotency_taken';
--   objects     [{id, kind, customer, parent, data, created, updated, due_at}]  upserted;
--   events      [{id, kind, data, created, next_attempt_at}]  inserted (due for delivery).
CREATE VIEW tp_writes (doc) AS SELECT NULL WHERE 0;

CREATE TRIGGER tp_writes_apply INSTEAD OF INSERT ON tp_writes
BEGIN
    SELECT RAISE(ABORT, 'tp_conflict')
    WHERE (SELECT count(*) FROM json_each(NEW.doc, '$.guards') AS g
           JOIN tp_objects AS o
             ON o.id = json_extract(g.value, '$.id') AND o.version = json_extract(g.value, '$.version'))
          <> json_array_length(NEW.doc, '$.guards');
    SELECT RAISE(ABORT, 'tp_idempotency_taken')
    WHERE EXISTS (SELECT 1 FROM json_each(NEW.doc, '$.idempotency') AS i
                  JOIN tp_idempotency AS k ON k.key = json_extract(i.value, '$.key'));
    INSERT INTO tp_idempotency (key, fingerprint, response, created)
    SELECT json_extract(value, '$.key'), json_extract(value, '$.fingerprint'), json_extract(value, '$.response'),
           json_extract(value, '$.created')
    FROM json_each(NEW.doc, '$.idempotency');
    INSERT INTO tp_objects (id, kind, customer, parent, data, created, updated, due_at)
    SELECT json_extract(value, '$.id'), json_extract(value, '$.kind'), json_extract(value, '$.customer'),
           json_extract(value, '$.parent'), json_extract(value, '$.data'), json_extract(value, '$.created'),
           json_extract(value, '$.updated'), json_extract(value, '$.due_at')
    FROM json_each(NEW.doc, '$.objects') WHERE true
    ON CONFLICT (id) DO UPDATE SET customer = excluded.customer, parent = excluded.parent, data = excluded.data,
        updated = excluded.updated, due_at = excluded.due_at, version = version + 1;
    INSERT INTO tp_events (id, type, data, created, next_attempt_at)
    SELECT json_extract(value, '$.id'), json_extract(value, '$.kind'), json_extract(value, '$.data'),
           json_extract(value, '$.created'), json_extract(value, '$.next_attempt_at')
    FROM json_each(NEW.doc, '$.events');
END;
