-- A counter of changes to read-mostly configuration (regions, shipping options, prices,
-- products' names and flags, pricing models): servers keep that configuration in memory and
-- compare this counter, read within the statements a request sends anyway, with the one their
-- copy was read at. Triggers bump it in the transaction of every change, whoever makes it
-- (another server, an operator's SQL), so a copy is never used once a newer change committed.
CREATE TABLE config_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);

CREATE FUNCTION bump_config_version() RETURNS trigger AS $$
BEGIN
    UPDATE config_version SET version = version + 1 WHERE id = 1;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER regions_config_version AFTER INSERT OR UPDATE OR DELETE ON regions
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_version();
CREATE TRIGGER shipping_options_config_version AFTER INSERT OR UPDATE OR DELETE ON shipping_options
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_version();
CREATE TRIGGER prices_config_version AFTER INSERT OR UPDATE OR DELETE ON prices
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_version();
CREATE TRIGGER pricing_models_config_version AFTER INSERT OR UPDATE OR DELETE ON pricing_models
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_version();
-- Stock moves (inventory columns, `updated`) are not configuration: only the columns a cached
-- copy holds count.
CREATE TRIGGER products_config_version AFTER INSERT OR DELETE OR UPDATE OF name, active, track_inventory ON products
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_version();
