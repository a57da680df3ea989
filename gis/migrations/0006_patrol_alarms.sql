-- Patrol alarms, second part: what the live layer last announced per unit (so a unit's last
-- move inside a second is sent once the second is over, not lost), and the outbox of
-- commands to units (SOS assistance now, dispatch orders later), published over MQTT on
-- citygrid/units/{id}/cmd after the transaction that made them has committed.
ALTER TABLE unit_state ADD COLUMN live_fix_time timestamptz;

CREATE TABLE unit_command (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  unit_id     integer NOT NULL REFERENCES unit(id) ON DELETE CASCADE,
  kind        text NOT NULL,                 -- sos_assist, dispatch, ...
  payload     jsonb NOT NULL,
  alarm_id    bigint REFERENCES unit_alarm(id) ON DELETE SET NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  claimed_at  timestamptz,                   -- a worker is publishing it (taken back if not sent soon)
  sent_at     timestamptz                    -- the broker has it
);
CREATE INDEX unit_command_unsent_idx ON unit_command (id) WHERE sent_at IS NULL;
CREATE INDEX unit_command_unit_idx ON unit_command (unit_id, created_at);

-- Two processes making the same day's partition at once (an ingest worker and the OsmAnd
-- endpoint, or two workers) must take turns: the second then finds it made.
CREATE OR REPLACE FUNCTION ensure_position_partitions(first_day date, last_day date) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  d date;
  made integer := 0;
BEGIN
  IF last_day - first_day > 366 THEN
    RAISE EXCEPTION 'at most a year of partitions at once';
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('citygrid.position_partitions'));
  FOR d IN SELECT generate_series(first_day, last_day, interval '1 day')::date LOOP
    IF to_regclass(format('position_%s', to_char(d, 'YYYYMMDD'))) IS NULL THEN
      EXECUTE format('CREATE TABLE %I PARTITION OF position FOR VALUES FROM (%L) TO (%L)',
                     format('position_%s', to_char(d, 'YYYYMMDD')),
                     d::timestamp AT TIME ZONE 'Asia/Shanghai',
                     (d + 1)::timestamp AT TIME ZONE 'Asia/Shanghai');
      made := made + 1;
    END IF;
  END LOOP;
  RETURN made;
END $$;

-- A unit's alarms along a replayed track.
CREATE INDEX unit_alarm_unit_since_idx ON unit_alarm (unit_id, since);
