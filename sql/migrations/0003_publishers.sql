-- 0003: what the real platform publishers need from the queue.

-- `waiting`: a post held back because its account must be reconnected; reconnecting makes it
-- pending again. The claim still reads only `pending` rows through ix_post_schedule_due.
ALTER TABLE post_schedule
    MODIFY COLUMN status ENUM('pending','processing','done','failed','cancelled','missed','waiting') NOT NULL DEFAULT 'pending';

-- platform_draft_id: an unpublished object an attempt made (an Instagram media container),
--   so a retry reuses it instead of making a second one.
-- deferred_since: the run_at the first rate-limit deferral moved; deferrals end 24 h after it.
-- unknown_since: recovery found an attempt with an unknown outcome, started then; the next
--   attempt looks for the post on the platform before posting it again.
ALTER TABLE post_schedule
    ADD COLUMN platform_draft_id VARCHAR(255) NULL AFTER last_error,
    ADD COLUMN deferred_since DATETIME(6) NULL AFTER platform_draft_id,
    ADD COLUMN unknown_since DATETIME(6) NULL AFTER deferred_since;
