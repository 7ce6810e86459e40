-- Data-plane slots: the small number that names a farm's kernel objects and its region of the
-- selection map. Farm ids are never reused and grow with every creation; slots are reused
-- after a farm is deleted (lowest free first, from 1), so churn never exhausts the data plane's
-- numbering, only the number of farms that exist at once can (see MAX_FARM_SLOT).
ALTER TABLE farms ADD COLUMN slot INTEGER;
UPDATE farms SET slot = 1 + (SELECT COUNT(*) FROM farms AS older WHERE older.id < farms.id);
CREATE UNIQUE INDEX farms_by_slot ON farms (slot);

-- Slots given back by deleted farms and not taken again yet.
CREATE TABLE free_farm_slots (
  slot INTEGER PRIMARY KEY
);

-- Port conflicts are checked among the farms of one VIP.
CREATE INDEX farms_by_vip ON farms (vip);
