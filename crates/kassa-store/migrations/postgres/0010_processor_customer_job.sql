-- The processor-customer job: customers still lacking their processor customer are its work
-- items; a failed creation waits `processor_retry_after` before the job tries it again (a
-- payment for the customer tries at once regardless).
ALTER TABLE customers ADD COLUMN processor_retry_after BIGINT;
CREATE INDEX customers_lacking_processor_customer ON customers (created, id) WHERE processor_customer IS NULL;
