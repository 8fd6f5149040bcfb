-- The nodes listing's pages (GET /api/v1/nodes?limit=&after=) are ranges of live names in byte
-- order, the order SQLite gives (nodes_live_name serves them there). The database's default
-- collation may order names otherwise (en_US looks past punctuation: web1 before web-2), and an
-- index serves a range or an order only in its own collation: this one is in bytes ("C").
-- Never edit a migration once released: add migrations/postgres/NNNN_what.sql instead.
CREATE UNIQUE INDEX nodes_live_name_bytes ON nodes (name COLLATE "C") WHERE deleted_at IS NULL;
