-- A counter of changes to webhook endpoints (created, updated, deleted), bumped by the store in
-- the transaction of the change. Servers keep the enabled endpoints' subscriptions in memory
-- under it: a transaction whose events no enabled endpoint wants marks them fanned out in the
-- statement that inserts them, if this counter still has the value the copy was read at (read
-- there with FOR SHARE on PostgreSQL, so an endpoint change committing meanwhile waits, or is
-- seen). Otherwise the events wait for the delivery job's fan-out, as before.
-- (Not a trigger: this migration runs before the one that creates webhook_endpoints.)
CREATE TABLE webhook_endpoints_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO webhook_endpoints_version (id, version) VALUES (1, 0);
