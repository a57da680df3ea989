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
  sent_at     timestamptz
);
CREATE INDEX unit_command_unsent_idx ON unit_command (id) WHERE sent_at IS NULL;
CREATE INDEX unit_command_unit_idx ON unit_command (unit_id, created_at);
