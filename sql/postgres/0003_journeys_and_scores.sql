-- 0003_journeys_and_scores: journeys written by the profile actors, scores kept on the profile.
--
-- customer_journeys holds one row per visitor and session (touchpoints appended as events
-- arrive, the stage only rises), so it is also the set of a visitor's sessions: the row a write
-- inserts is the session that counts in total_sessions. visitor_sessions, which did only that,
-- goes away (its rows become journeys without touchpoints).

INSERT INTO customer_journeys (user_fingerprint, session_id, started_at, updated_at)
SELECT v.user_fingerprint, v.session_id, coalesce(s.started_at, now()), coalesce(s.last_activity_at, now())
FROM visitor_sessions v LEFT JOIN analytics_sessions s USING (session_id)
ON CONFLICT (user_fingerprint, session_id) DO NOTHING;
DROP TABLE visitor_sessions;

-- When the first and last touches with a source happened: sources merge by these times, so the
-- result does not depend on how events were grouped into writes.
ALTER TABLE customer_journeys ADD COLUMN first_touch_at timestamptz;
ALTER TABLE customer_journeys ADD COLUMN last_touch_at timestamptz;

-- When the scorer last looked at the visitor: idle visitors are rescored by age of this.
ALTER TABLE user_behavior_profiles ADD COLUMN scored_at timestamptz;
CREATE INDEX user_behavior_profiles_scored_at_idx ON user_behavior_profiles (scored_at NULLS FIRST);

-- Profile rows are updated in place many times: leave room on each page so updates stay on it
-- (HOT updates), and do not index last_seen, which changes on every write (an index on a changed
-- column rules HOT out). Nothing reads profiles by last_seen.
DROP INDEX user_behavior_profiles_last_seen_idx;
ALTER TABLE user_behavior_profiles SET (fillfactor = 80);
