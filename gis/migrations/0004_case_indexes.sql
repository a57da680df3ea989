-- 0004: indexes for case lists at a million cases (measured in bench/bench_cases.py).
-- An inspector's visibility asks "did I report it?" on every list.
CREATE INDEX case_reporter_user_idx ON case_reporter (user_id, case_id) WHERE user_id IS NOT NULL;
-- Map lists of open cases: a small spatial index instead of the one over all cases; queries
-- state `state <> ALL('{not_filed,closed,void}')` so the planner can choose it.
CREATE INDEX case_file_open_location_idx ON case_file USING gist (location)
  WHERE state <> ALL ('{not_filed,closed,void}'::text[]);
-- Foreign keys pointing at case_file get indexes, so checking them never scans a table.
CREATE INDEX case_file_duplicate_of_idx ON case_file (duplicate_of) WHERE duplicate_of IS NOT NULL;
CREATE INDEX case_pause_case_idx ON case_pause (case_id);
CREATE INDEX case_extension_case_idx ON case_extension (case_id);
CREATE INDEX case_timer_case_all_idx ON case_timer (case_id);
CREATE INDEX notification_case_idx ON notification (case_id) WHERE case_id IS NOT NULL;
