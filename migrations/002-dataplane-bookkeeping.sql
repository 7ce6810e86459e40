-- What the reconciler must remember across restarts about the kernel state it changed.
-- Not configuration: writing here does not bump the store generation.

-- Kernel settings nftfarm changed, with the value they had before, restored when no farm
-- needs them any more (e.g. net.ipv4.conf.eth0.forwarding).
CREATE TABLE saved_kernel_settings (
  name  TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

-- The last MAC address seen for each backend IP on each interface. After a restart the
-- kernel's ARP table may have forgotten a backend; flows pinned to it must keep going.
CREATE TABLE known_neighbors (
  interface  TEXT NOT NULL,
  ip         TEXT NOT NULL,
  mac        TEXT NOT NULL,
  seen_at    TEXT NOT NULL,
  PRIMARY KEY (interface, ip)
);
