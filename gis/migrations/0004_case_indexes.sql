-- 0004: indexes for case lists at a million cases (measured in bench/bench_cases.py).
-- An inspector's visibility asks "did I report it?" on every list.
CREATE INDEX case_reporter_user_idx ON case_reporter (user_id, case_id) WHERE user_id IS NOT NULL;
-- Map lists of open cases: a small spatial index instead of the one over all cases; queries
-- state `state <> ALL('{not_filed,closed,void}')` so the planner can choose it.
CREATE INDEX case_file_open_location_idx ON case_file USING gist (location)
  WHERE state <> ALL ('{not_filed,closed,void}'::text[]);
