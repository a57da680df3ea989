-- Commands to IoT devices (switch a street light, reset a cover sensor): the command log and
-- the outbox the ingest workers publish from (citygrid/devices/{id}/cmd), answered by the
-- device on …/cmd/ack; a command not answered by its deadline times out.
CREATE TABLE device_command (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  device_id   text NOT NULL REFERENCES device(id) ON DELETE CASCADE,
  name        text NOT NULL,                  -- from the type's commands in the catalog
  params      jsonb NOT NULL DEFAULT '{}',
  payload     jsonb NOT NULL,                 -- what is published: {"id", "name", "params"}
  status      text NOT NULL DEFAULT 'queued'
              CHECK (status IN ('queued', 'sent', 'acked', 'failed', 'timed_out')),
  created_by  text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  deadline    timestamptz NOT NULL,           -- no answer by then: timed_out
  claimed_at  timestamptz,                    -- a worker is publishing it (taken back if not sent soon)
  sent_at     timestamptz,                    -- the broker has it
  answered_at timestamptz,
  result      jsonb                           -- the device's answer
);
CREATE INDEX device_command_unsent_idx ON device_command (id) WHERE sent_at IS NULL;
CREATE INDEX device_command_open_idx ON device_command (deadline) WHERE status IN ('queued', 'sent');
CREATE INDEX device_command_device_idx ON device_command (device_id, created_at);
ALTER TABLE device_type ADD COLUMN commands jsonb NOT NULL DEFAULT '{}';   -- name → {params: {field: spec}, timeout_s}
