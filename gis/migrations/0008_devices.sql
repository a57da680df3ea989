-- IoT field devices (物联感知设备): the type catalog, the registry, telemetry in daily
-- partitions, each device's latest values and rule state, and the alarms with their lifecycle.

CREATE TABLE device_type (
  code          text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]{1,39}$'),
  name          text NOT NULL,                       -- zh-CN
  name_en       text NOT NULL,
  part_classes  text[] NOT NULL DEFAULT '{}',        -- the part classes a device of it may sit on
  heartbeat_s   integer CHECK (heartbeat_s > 0),     -- how often a healthy one reports
  fields        jsonb NOT NULL,                      -- telemetry schema: field → {type, unit, min, max, label}
  rules         jsonb NOT NULL DEFAULT '[]',         -- default rules (devices/rules.py)
  updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE device (
  -- also the MQTT topic level (citygrid/devices/{id}/…) and, by default, the broker login
  id            text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
  type_code     text NOT NULL REFERENCES device_type(code),
  part_id       char(16) REFERENCES part(id),        -- the part (部件) it sits on, if any
  location      geometry(Point, 4326) NOT NULL,
  grid_code     char(15) REFERENCES grid(code),      -- the unit grid it lies in (none: outside the city)
  dept_id       integer REFERENCES department(id),   -- who owns and maintains it
  username      text NOT NULL UNIQUE,                -- broker login (one device cannot publish as another)
  password_hash text,                                -- mosquitto's PBKDF2-SHA512 ($7$…); none: not yet issued
  meta          jsonb NOT NULL DEFAULT '{}',         -- firmware, model, installed on …
  rules         jsonb NOT NULL DEFAULT '{}',         -- overrides of the type's rules by id
  active        boolean NOT NULL DEFAULT true,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX device_location_idx ON device USING gist (location);
CREATE INDEX device_part_idx ON device (part_id);
CREATE INDEX device_type_idx ON device (type_code);

-- Telemetry: one row per reading, its values as sent (checked against the type's schema).
CREATE TABLE telemetry (
  device_id     text NOT NULL,
  ts            timestamptz NOT NULL,
  received_at   timestamptz NOT NULL,
  values        jsonb NOT NULL,
  PRIMARY KEY (device_id, ts)                        -- a redelivered message is a no-op
) PARTITION BY RANGE (ts);

-- Latest values (merged field by field), online state and the rules' state per device:
-- what the map and the rules need without reading telemetry.
CREATE TABLE device_state (
  device_id     text PRIMARY KEY REFERENCES device(id) ON DELETE CASCADE,
  ts            timestamptz,                         -- the newest reading judged
  values        jsonb NOT NULL DEFAULT '{}',
  rules         jsonb NOT NULL DEFAULT '{}',         -- devices.rules.evaluate's state
  online        boolean,                             -- from the status topic (birth / last will)
  status_at     timestamptz,
  seen_at       timestamptz                          -- anything at all from it
);

CREATE TABLE device_alarm (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  device_id       text NOT NULL REFERENCES device(id) ON DELETE CASCADE,
  rule_id         text NOT NULL,
  rule_name       text NOT NULL,
  severity        text NOT NULL CHECK (severity IN ('critical', 'major', 'minor', 'warning')),
  -- 告警状态: active_unack → active_ack → cleared (or cleared_unack → cleared when acknowledged late)
  status          text NOT NULL CHECK (status IN ('active_unack', 'active_ack', 'cleared_unack', 'cleared')),
  raised_at       timestamptz NOT NULL,              -- the reading that raised it
  last_at         timestamptz NOT NULL,              -- the latest reading that still met the rule
  repeats         integer NOT NULL DEFAULT 0,
  value           jsonb NOT NULL DEFAULT '{}',       -- the values that raised it
  acked_at        timestamptz,
  acked_by        text,
  cleared_at      timestamptz,
  cleared_by      text,                              -- 'device' or who closed its case
  escalated_at    timestamptz,
  part_id         char(16) REFERENCES part(id),
  part_status_was text,                              -- the part's status before the alarm changed it
  case_id         bigint REFERENCES case_file(id),
  lon             double precision NOT NULL,
  lat             double precision NOT NULL
);
-- One alarm per (device, rule) while it is active: repeats update it.
CREATE UNIQUE INDEX device_alarm_active_idx ON device_alarm (device_id, rule_id)
  WHERE status IN ('active_unack', 'active_ack');
CREATE INDEX device_alarm_status_idx ON device_alarm (status, raised_at);
CREATE INDEX device_alarm_device_idx ON device_alarm (device_id, raised_at);

CREATE TABLE device_alarm_comment (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  alarm_id    bigint NOT NULL REFERENCES device_alarm(id) ON DELETE CASCADE,
  at          timestamptz NOT NULL DEFAULT now(),
  author      text NOT NULL,
  body        text NOT NULL CHECK (length(body) BETWEEN 1 AND 2000)
);
CREATE INDEX device_alarm_comment_idx ON device_alarm_comment (alarm_id, at);

-- Daily partitions of position and telemetry, made and dropped by the application role
-- through these owner's functions (one pair for both tables: the ones 0005/0006 made for
-- positions alone are replaced). One lock per table, so two processes making the same day
-- take turns (the key for position is the one 0006 used).
CREATE FUNCTION ensure_day_partitions(parent text, first_day date, last_day date) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  d date;
  made integer := 0;
BEGIN
  IF parent NOT IN ('position', 'telemetry') THEN
    RAISE EXCEPTION 'no daily partitions for table %', parent;
  END IF;
  IF last_day - first_day > 366 THEN
    RAISE EXCEPTION 'at most a year of partitions at once';
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext(format('citygrid.%s_partitions', parent)));
  FOR d IN SELECT generate_series(first_day, last_day, interval '1 day')::date LOOP
    IF to_regclass(format('%s_%s', parent, to_char(d, 'YYYYMMDD'))) IS NULL THEN
      EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                     format('%s_%s', parent, to_char(d, 'YYYYMMDD')), parent,
                     d::timestamp AT TIME ZONE 'Asia/Shanghai',
                     (d + 1)::timestamp AT TIME ZONE 'Asia/Shanghai');
      made := made + 1;
    END IF;
  END LOOP;
  RETURN made;
END $$;

CREATE FUNCTION drop_day_partitions_before(parent text, keep_from date) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  part record;
  dropped integer := 0;
BEGIN
  IF parent NOT IN ('position', 'telemetry') THEN
    RAISE EXCEPTION 'no daily partitions for table %', parent;
  END IF;
  FOR part IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = parent::regclass AND c.relname ~ ('^' || parent || '_[0-9]{8}$')
                AND to_date(right(c.relname, 8), 'YYYYMMDD') < keep_from LOOP
    EXECUTE format('DROP TABLE %I', part.relname);
    dropped := dropped + 1;
  END LOOP;
  RETURN dropped;
END $$;
REVOKE ALL ON FUNCTION ensure_day_partitions(text, date, date) FROM PUBLIC;
REVOKE ALL ON FUNCTION drop_day_partitions_before(text, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ensure_day_partitions(text, date, date) TO citygrid_app;
GRANT EXECUTE ON FUNCTION drop_day_partitions_before(text, date) TO citygrid_app;
DROP FUNCTION ensure_position_partitions(date, date);
DROP FUNCTION drop_position_partitions_before(date);
