-- The registration key (SHA-256 hex) of the agent that registered the node, or that last took it
-- over: an agent whose registration answer was lost (a timeout, a reset connection) asks again
-- with the same key and no token, and gets its node back while the node's first token has not
-- been used yet (FleetDatabase.register; docs/identity.md). NULL for nodes registered before this
-- column, and for agents that send no key.
ALTER TABLE nodes ADD COLUMN registration_key_hash TEXT;
