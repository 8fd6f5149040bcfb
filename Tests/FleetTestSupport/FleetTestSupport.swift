// Server harness for tests (owned by the server work).
