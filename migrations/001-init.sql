-- nftfarm schema, version 1.
-- Every write bumps store_generation.value in the same transaction; the reconciler converges
-- the kernel to the newest generation and reports which one it applied.

CREATE TABLE store_generation (
  id    INTEGER PRIMARY KEY CHECK (id = 1),
  value INTEGER NOT NULL
);
INSERT INTO store_generation (id, value) VALUES (1, 0);

CREATE TABLE farms (
  -- AUTOINCREMENT: ids are never reused, so kernel objects named after a deleted farm can
  -- never be mistaken for a new farm's.
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  name        TEXT NOT NULL UNIQUE,
  profile     TEXT NOT NULL DEFAULT 'l4xnat' CHECK (profile = 'l4xnat'),
  vip         TEXT NOT NULL,
  vport       TEXT NOT NULL,
  protocol    TEXT NOT NULL DEFAULT 'tcp',
  nattype     TEXT NOT NULL DEFAULT 'nat' CHECK (nattype IN ('nat', 'dnat', 'dsr', 'stateless_dnat')),
  algorithm   TEXT NOT NULL DEFAULT 'weight',
  persistence TEXT NOT NULL DEFAULT '',
  ttl         INTEGER NOT NULL DEFAULT 60 CHECK (ttl >= 1),
  -- What the operator asked for: 1 = started, 0 = stopped.
  running     INTEGER NOT NULL DEFAULT 1 CHECK (running IN (0, 1)),
  -- Generation of the last write that changed this farm or its backends.
  generation  INTEGER NOT NULL
);

CREATE TABLE backends (
  -- Never reused: the data plane pins flows to this number, so a new backend must not
  -- inherit the flows of a deleted one.
  uid         INTEGER PRIMARY KEY AUTOINCREMENT,
  farm_id     INTEGER NOT NULL REFERENCES farms (id) ON DELETE CASCADE,
  -- The ZAPI id: the lowest free integer within the farm.
  id          INTEGER NOT NULL CHECK (id >= 0),
  ip          TEXT NOT NULL,
  -- NULL: the client's destination port.
  port        INTEGER CHECK (port BETWEEN 1 AND 65535),
  weight      INTEGER NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 9),
  priority    INTEGER NOT NULL DEFAULT 1 CHECK (priority BETWEEN 1 AND 9),
  max_conns   INTEGER NOT NULL DEFAULT 0 CHECK (max_conns >= 0),
  maintenance TEXT NOT NULL DEFAULT 'none' CHECK (maintenance IN ('none', 'drain', 'cut')),
  UNIQUE (farm_id, id)
);
CREATE INDEX backends_by_farm ON backends (farm_id, id);

CREATE TABLE health_checks (
  name          TEXT PRIMARY KEY,
  description   TEXT NOT NULL DEFAULT '',
  command       TEXT NOT NULL,
  interval      INTEGER NOT NULL CHECK (interval >= 1),
  timeout       INTEGER NOT NULL CHECK (timeout >= 1),
  cut_conns     INTEGER NOT NULL DEFAULT 0 CHECK (cut_conns IN (0, 1)),
  log           INTEGER NOT NULL DEFAULT 0 CHECK (log IN (0, 1)),
  backend_alias INTEGER NOT NULL DEFAULT 0 CHECK (backend_alias IN (0, 1)),
  template      INTEGER NOT NULL DEFAULT 0 CHECK (template IN (0, 1))
);

-- One check per farm, as in ZEVENET.
CREATE TABLE farm_health_checks (
  farm_id    INTEGER PRIMARY KEY REFERENCES farms (id) ON DELETE CASCADE,
  check_name TEXT NOT NULL REFERENCES health_checks (name) ON DELETE RESTRICT
);
CREATE INDEX farm_health_checks_by_check ON farm_health_checks (check_name);

-- The built-in templates (ZEVENET's four basic checks). HOST and PORT are replaced per backend.
INSERT INTO health_checks (name, description, command, interval, timeout, cut_conns, log, backend_alias, template) VALUES
  ('check_tcp', 'Send TCP connection to backend', 'check_tcp -H HOST -p PORT', 15, 15, 0, 0, 0, 1),
  ('check_http', 'Send HTTP request to backend and expect a 200 OK response with a timeout of 5 secs.', 'check_http -I HOST -p PORT -e 200 -t 5', 15, 15, 0, 0, 0, 1),
  ('check_udp', 'Send UDP connection to backend and check if port is opened.', 'check_udp -H HOST -p PORT', 15, 15, 1, 0, 0, 1),
  ('check_ping', 'Send 2 ICMP packets and check that the 100% reaches the host.', 'check_ping -H HOST -w 2,100% -c 2,100% -p 2', 15, 15, 1, 0, 0, 1);
