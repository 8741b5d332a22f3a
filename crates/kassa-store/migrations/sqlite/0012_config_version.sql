-- A counter of changes to read-mostly configuration (regions, shipping options, prices,
-- products' names and flags, pricing models): servers keep that configuration in memory and
-- compare this counter, read within the statements a request sends anyway, with the one their
-- copy was read at. Triggers bump it in the transaction of every change, whoever makes it.
CREATE TABLE config_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);

CREATE TRIGGER regions_config_version_i AFTER INSERT ON regions BEGIN UPDATE config_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER regions_config_version_u AFTER UPDATE ON regions BEGIN UPDATE config_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER regions_config_version_d AFTER DELETE ON regions BEGIN UPDATE config_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER shipping_options_config_version_i AFTER INSERT ON shipping_options BEGIN UPDATE config_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER shipping_options_config_version_u AFTER UPDATE ON shipping_options BEGIN UPDATE config_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER shipping_options_config_version_d AFTER DELETE ON shipping_options BEGIN UPDATE config_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER prices_config_version_i AFTER INSERT ON prices BEGIN UPDATE config_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER prices_config_version_u AFTER UPDATE ON prices BEGIN UPDATE config_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER prices_config_version_d AFTER DELETE ON prices BEGIN UPDATE config_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER pricing_models_config_version_i AFTER INSERT ON pricing_models BEGIN UPDATE config_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER pricing_models_config_version_u AFTER UPDATE ON pricing_models BEGIN UPDATE config_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER pricing_models_config_version_d AFTER DELETE ON pricing_models BEGIN UPDATE config_version SET version = version + 1 WHERE id = 1; END;
-- Stock moves (inventory columns, `updated`) are not configuration.
CREATE TRIGGER products_config_version_i AFTER INSERT ON products BEGIN UPDATE config_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER products_config_version_u AFTER UPDATE OF name, active, track_inventory ON products BEGIN UPDATE config_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER products_config_version_d AFTER DELETE ON products BEGIN UPDATE config_version SET version = version + 1 WHERE id = 1; END;
