-- Downsampled telemetry (降采样): per device and hour, how many readings came and each numeric
-- or boolean field's average, minimum and maximum (booleans as 0/1, so the average of `open`
-- is the share of readings it was open). Raw readings older than telemetry_raw_days are rolled
-- up here and their daily partition dropped; these rows are kept telemetry_retention_days.
CREATE TABLE telemetry_hourly (
  device_id  text NOT NULL,
  hour       timestamptz NOT NULL,
  n          integer NOT NULL,
  avg        jsonb NOT NULL,
  min        jsonb NOT NULL,
  max        jsonb NOT NULL,
  PRIMARY KEY (device_id, hour)
);
CREATE INDEX telemetry_hourly_hour_idx ON telemetry_hourly (hour);

-- Every reading rewrites its device's state row: room on each page lets PostgreSQL update it
-- in place (a HOT update, no new index entry).
ALTER TABLE device_state SET (fillfactor = 70);

-- Bumped by every write of a device's rule state: a worker that judged readings on a state
-- someone has changed since must judge them again (devices.telemetry_store).
ALTER TABLE device_state ADD COLUMN version bigint NOT NULL DEFAULT 0;
