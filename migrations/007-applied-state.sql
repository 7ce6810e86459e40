-- What the reconciler last committed to nftables, so that a restart can adopt a kernel that
-- already holds it instead of loading everything again. Not configuration: writing here does
-- not bump the store generation.

-- Each farm with rules in the kernel, as the reconciler derived it (a DesiredFarm, JSON).
CREATE TABLE applied_farms (
  farm_id  INTEGER PRIMARY KEY,
  state    TEXT NOT NULL
);

-- The nftables ruleset generation right after that commit, or NULL when not known exactly
-- (someone else's commit may have come between). Written after the commit: a restart adopts
-- the applied farms only when the kernel's generation still equals it (nobody committed since).
CREATE TABLE applied_generation (
  id     INTEGER PRIMARY KEY CHECK (id = 1),
  value  INTEGER
);
INSERT INTO applied_generation (id, value) VALUES (1, NULL);
