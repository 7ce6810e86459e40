-- BGP announcement of VIPs through BIRD (issue 12). One settings row; neighbours in their own
-- table. router_id is node-specific: the exported configuration leaves it out.
CREATE TABLE bgp_settings (
  id               INTEGER PRIMARY KEY CHECK (id = 1),
  enabled          INTEGER NOT NULL DEFAULT 0 CHECK (enabled IN (0, 1)),
  -- 'bird': nftfarm runs BIRD; 'external': the operator's own daemon learns the VIPs from
  -- the kernel table nftfarm keeps (both: the VIPs announced are routes in table 222).
  speaker          TEXT NOT NULL DEFAULT 'bird' CHECK (speaker IN ('bird', 'external')),
  asn              INTEGER CHECK (asn BETWEEN 1 AND 4294967294),
  router_id        TEXT,
  hold_time        INTEGER NOT NULL DEFAULT 90 CHECK (hold_time = 0 OR hold_time BETWEEN 3 AND 65535),
  drain_time       INTEGER NOT NULL DEFAULT 5 CHECK (drain_time BETWEEN 0 AND 3600),
  med              INTEGER CHECK (med BETWEEN 0 AND 4294967295),
  -- Space-separated standard communities ("65000:100 65000:200"), the same on every node.
  communities      TEXT NOT NULL DEFAULT '',
  graceful_restart INTEGER NOT NULL DEFAULT 0 CHECK (graceful_restart IN (0, 1))
);
INSERT INTO bgp_settings (id) VALUES (1);

CREATE TABLE bgp_neighbors (
  address TEXT PRIMARY KEY,
  asn     INTEGER NOT NULL CHECK (asn BETWEEN 1 AND 4294967294)
);
