-- Patrol GPS (巡查定位): units and their devices, shifts with assigned areas, positions in
-- daily partitions, refused messages, the alarm handlers' memory per unit, alarms.
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE unit (
  id              integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  kind            text NOT NULL CHECK (kind IN ('inspector', 'officer', 'vehicle', 'team')),
  dept_id         integer REFERENCES department(id),
  phone           text,
  user_id         integer UNIQUE REFERENCES app_user(id),     -- the person's login, if any
  leader_user_id  integer REFERENCES app_user(id),            -- escalations go here
  active          boolean NOT NULL DEFAULT true,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX unit_dept_idx ON unit (dept_id);

-- A device key as the decoders name it: owntracks:USER/DEVICE, osmand:ID.
-- (Native payloads name the unit itself: unit:ID needs no binding.)
CREATE TABLE unit_device (
  device    text PRIMARY KEY CHECK (device ~ '^(owntracks:[^/\s]+/[^/\s]+|osmand:\S+)$'),
  unit_id   integer NOT NULL REFERENCES unit(id) ON DELETE CASCADE,
  bound_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX unit_device_unit_idx ON unit_device (unit_id);

-- Who is on duty when, and where (排班): the area is the union of the listed grids or a
-- polygon drawn by hand. A unit has at most one shift at any moment.
CREATE TABLE shift (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  unit_id     integer NOT NULL REFERENCES unit(id) ON DELETE CASCADE,
  starts_at   timestamptz NOT NULL,
  ends_at     timestamptz NOT NULL,
  area_grids  text[],
  area        geometry(MultiPolygon, 4326) NOT NULL CHECK (ST_IsValid(area)),
  created_by  text NOT NULL,
  CHECK (ends_at > starts_at AND ends_at - starts_at <= interval '24 hours'),
  EXCLUDE USING gist (unit_id WITH =, tstzrange(starts_at, ends_at) WITH &&)
);
CREATE INDEX shift_time_idx ON shift (ends_at, starts_at);

-- One row per fix; (device, fix_time) makes a redelivered message a no-op. Coordinates as
-- plain numbers: written at tens of thousands of rows a second, read back as tracks.
-- flags: 1 bad coordinates (null island, far outside the jurisdiction), 2 impossible
-- speed jump, 4 poor accuracy — kept for the record, never alarmed on.
CREATE TABLE position (
  device       text NOT NULL,
  fix_time     timestamptz NOT NULL,
  unit_id      integer NOT NULL,
  received_at  timestamptz NOT NULL,
  lon          double precision NOT NULL,
  lat          double precision NOT NULL,
  accuracy_m   real,
  altitude_m   real,
  speed_mps    real,
  course_deg   real,
  battery_pct  real,
  sos          boolean NOT NULL DEFAULT false,
  flags        smallint NOT NULL DEFAULT 0,
  PRIMARY KEY (device, fix_time)
) PARTITION BY RANGE (fix_time);
CREATE INDEX position_unit_time_idx ON position (unit_id, fix_time);

-- Daily partitions (local days, China Standard Time), made ahead by the ingest worker and
-- dropped after the retention period. The worker acts as the application role, which does
-- not own the table: these two functions do the DDL on its behalf, and nothing else.
CREATE FUNCTION ensure_position_partitions(first_day date, last_day date) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  d date;
  made integer := 0;
BEGIN
  IF last_day - first_day > 366 THEN
    RAISE EXCEPTION 'at most a year of partitions at once';
  END IF;
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

CREATE FUNCTION drop_position_partitions_before(keep_from date) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  part record;
  dropped integer := 0;
BEGIN
  FOR part IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'position'::regclass AND c.relname ~ '^position_[0-9]{8}$'
                AND to_date(substr(c.relname, 10), 'YYYYMMDD') < keep_from LOOP
    EXECUTE format('DROP TABLE %I', part.relname);
    dropped := dropped + 1;
  END LOOP;
  RETURN dropped;
END $$;
REVOKE ALL ON FUNCTION ensure_position_partitions(date, date) FROM PUBLIC;
REVOKE ALL ON FUNCTION drop_position_partitions_before(date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ensure_position_partitions(date, date) TO citygrid_app;
GRANT EXECUTE ON FUNCTION drop_position_partitions_before(date) TO citygrid_app;

-- Messages that could not be taken, whole, with the reason (nothing is dropped silently).
CREATE TABLE dead_letter (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  received_at    timestamptz NOT NULL DEFAULT now(),
  source         text NOT NULL,          -- owntracks, osmand, native
  topic          text,
  payload        bytea NOT NULL,         -- at most the first 64 KiB
  payload_bytes  integer NOT NULL,
  reason         text NOT NULL,
  message        text NOT NULL
);
CREATE INDEX dead_letter_time_idx ON dead_letter (received_at);
CREATE INDEX dead_letter_reason_idx ON dead_letter (reason, received_at);

-- What the alarm handlers remember per unit between batches (and across restarts and
-- workers): the last good fix, since when it is outside its area, where it has stood still.
CREATE TABLE unit_state (
  unit_id         integer PRIMARY KEY REFERENCES unit(id) ON DELETE CASCADE,
  fix_time        timestamptz NOT NULL,
  lon             double precision NOT NULL,
  lat             double precision NOT NULL,
  speed_mps       real,
  accuracy_m      real,
  battery_pct     real,
  device          text NOT NULL,
  outside_since   timestamptz,
  anchor_lon      double precision,
  anchor_lat      double precision,
  anchor_since    timestamptz,
  live_sent_at    timestamptz
);

CREATE TABLE unit_alarm (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  unit_id       integer NOT NULL REFERENCES unit(id) ON DELETE CASCADE,
  shift_id      bigint REFERENCES shift(id) ON DELETE SET NULL,
  kind          text NOT NULL CHECK (kind IN ('out_of_area', 'stationary', 'offline', 'sos')),
  since         timestamptz NOT NULL,     -- when the condition began
  raised_at     timestamptz NOT NULL,     -- when it had lasted long enough to raise
  escalated_at  timestamptz,
  cleared_at    timestamptz,
  cleared_by    text,
  lon           double precision,
  lat           double precision,
  message       text NOT NULL,
  detail        jsonb NOT NULL DEFAULT '{}'
);
-- Raised once: one open alarm of a kind per unit.
CREATE UNIQUE INDEX unit_alarm_open_idx ON unit_alarm (unit_id, kind) WHERE cleared_at IS NULL;
CREATE INDEX unit_alarm_time_idx ON unit_alarm (raised_at);
CREATE INDEX unit_alarm_shift_idx ON unit_alarm (shift_id);

-- Each ingest worker's counters, written every few seconds (the status page reads them).
CREATE TABLE ingest_worker (
  name           text PRIMARY KEY,
  started_at     timestamptz NOT NULL,
  seen_at        timestamptz NOT NULL,
  received       bigint NOT NULL DEFAULT 0,
  stored         bigint NOT NULL DEFAULT 0,
  duplicates     bigint NOT NULL DEFAULT 0,
  dead_letters   bigint NOT NULL DEFAULT 0,
  handler_errors bigint NOT NULL DEFAULT 0,
  queue_depth    integer NOT NULL DEFAULT 0
);

-- (The tables above get the app role's rights from 0001's default privileges; a blanket
-- GRANT here would hand back what 0001-0003 took away from it.)
