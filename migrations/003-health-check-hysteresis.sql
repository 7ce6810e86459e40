-- Hysteresis of health checks: consecutive failed checks before a backend is marked down
-- (fall) and consecutive passed checks before it is up again (rise). 1 and 1 is what
-- ZEVENET's farmguardian does (the first result changes the state).
ALTER TABLE health_checks ADD COLUMN fall INTEGER NOT NULL DEFAULT 1 CHECK (fall BETWEEN 1 AND 100);
ALTER TABLE health_checks ADD COLUMN rise INTEGER NOT NULL DEFAULT 1 CHECK (rise BETWEEN 1 AND 100);
