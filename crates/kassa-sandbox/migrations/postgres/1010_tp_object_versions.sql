-- Every write of a processor object counts its version up. A processor call reads its objects
-- without locking them and writes everything it did in one statement that checks the versions
-- it read (optimistic concurrency): no transaction held across the call's logic, one round trip
-- for the write. On PostgreSQL that statement is a data-modifying CTE (kassa-sandbox, db::apply).
ALTER TABLE tp_objects ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
