-- The audit trail: one row per write request (POST, PUT, DELETE) that passed the key check,
-- accepted or refused (its HTTP status says which). Not configuration: writing here does not
-- bump the store generation. Bounded: the API keeps the newest rows and deletes older ones
-- by id (ids only grow, so that is an index range).
CREATE TABLE audit_log (
  id              INTEGER PRIMARY KEY,
  -- ISO 8601, UTC, milliseconds.
  at              TEXT NOT NULL,
  method          TEXT NOT NULL,
  -- The route pattern, e.g. /zapi/v4.0/zapi.cgi/farms/:farmname ('unmatched' for none).
  route           TEXT NOT NULL,
  -- The farm named in the path or the body, if any (cut to 64 characters).
  farm            TEXT,
  -- 'sha256:' and the first 16 hex digits of the SHA-256 of the key used; never the key.
  key_fingerprint TEXT NOT NULL,
  remote          TEXT NOT NULL,
  status          INTEGER NOT NULL
);
CREATE INDEX audit_log_by_farm ON audit_log (farm, id);
