-- 0004: the time zone a company's calendar is drawn in (the dashboard).
ALTER TABLE companies ADD COLUMN timezone VARCHAR(64) NOT NULL DEFAULT 'UTC' AFTER name;
