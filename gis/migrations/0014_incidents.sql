-- Emergency command (应急指挥): incidents (突发事件), plan activations and their tasks,
-- dispatch orders to resources, the duty roster (值守), public warnings (CAP 1.2 alerts).
-- Plans themselves are YAML documents (workflows/seed/plans); each activation keeps the
-- plan's id and version, and a copy of the document it ran.

-- ---------------------------------------------------------------- duty (值守)
CREATE TABLE duty_post (                          -- 值守岗位: 县应急指挥长, 排水抢险队长 …
  id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
  dept_id     integer REFERENCES department(id),
  phone       text
);

CREATE TABLE duty_shift (                         -- who holds a post when (排班)
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  post_id     integer NOT NULL REFERENCES duty_post(id) ON DELETE CASCADE,
  user_id     integer NOT NULL REFERENCES app_user(id),
  starts_at   timestamptz NOT NULL,
  ends_at     timestamptz NOT NULL,
  CHECK (ends_at > starts_at)
);
CREATE INDEX duty_shift_post_idx ON duty_shift (post_id, starts_at);
CREATE INDEX duty_shift_user_idx ON duty_shift (user_id, starts_at);

CREATE TABLE duty_handover (                      -- 交接班: notes from the one going off duty
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  post_id      integer NOT NULL REFERENCES duty_post(id) ON DELETE CASCADE,
  from_user_id integer NOT NULL REFERENCES app_user(id),
  to_user_id   integer REFERENCES app_user(id),
  at           timestamptz NOT NULL DEFAULT now(),
  note         text NOT NULL CHECK (length(note) BETWEEN 1 AND 4000),
  acknowledged_at timestamptz
);
CREATE INDEX duty_handover_post_idx ON duty_handover (post_id, at);

-- ---------------------------------------------------------------- incidents
CREATE TABLE incident_number (day date PRIMARY KEY, last integer NOT NULL);

CREATE TABLE incident (                           -- 突发事件
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  incident_no   text NOT NULL UNIQUE,             -- YJ + date + 3 digits
  title         text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
  category      text NOT NULL,                    -- one of the four categories (catalog `emergency`)
  subtype       text NOT NULL,
  level         text NOT NULL CHECK (level IN ('Ⅰ', 'Ⅱ', 'Ⅲ', 'Ⅳ')),
  status        text NOT NULL DEFAULT 'reported'
                CHECK (status IN ('reported', 'verified', 'responding', 'contained', 'closed')),
  location      geometry(Point, 4326) NOT NULL,
  radius_m      double precision CHECK (radius_m > 0 AND radius_m <= 50000),
  area          geometry(MultiPolygon, 4326),     -- the affected area: drawn, or the circle of radius_m
  grid_code     char(15) NOT NULL REFERENCES grid(code),
  description   text NOT NULL DEFAULT '' CHECK (length(description) <= 4000),
  drill         boolean NOT NULL DEFAULT false,   -- 演练: excluded from statistics, alerts are Exercise
  details       jsonb NOT NULL DEFAULT '{}'::jsonb, -- figures the warning template uses (depth, …)
  reported_by   text NOT NULL,
  reported_at   timestamptz NOT NULL DEFAULT now(),
  verified_at   timestamptz,
  responding_at timestamptz,
  contained_at  timestamptz,
  closed_at     timestamptz,
  version       integer NOT NULL DEFAULT 1,       -- bumped by every change: stale writers get 409
  updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX incident_open_idx ON incident (status, reported_at) WHERE status <> 'closed';
CREATE INDEX incident_location_idx ON incident USING gist (location);

-- Where an incident came from and what it touches, linked both ways: a case page finds its
-- incident by (kind, ref_id).
CREATE TABLE incident_link (
  incident_id  bigint NOT NULL REFERENCES incident(id) ON DELETE CASCADE,
  kind         text NOT NULL CHECK (kind IN ('case', 'device_alarm', 'camera_event', 'unit_alarm')),
  ref_id       bigint NOT NULL,
  promoted     boolean NOT NULL DEFAULT false,    -- the incident was promoted from this one
  linked_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (incident_id, kind, ref_id)
);
CREATE INDEX incident_link_ref_idx ON incident_link (kind, ref_id);

-- The timeline (时间轴): every report, level change, activation, task change, waiver,
-- notification, dispatch and alert, in order.
CREATE TABLE incident_event (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  incident_id  bigint NOT NULL REFERENCES incident(id) ON DELETE CASCADE,
  at           timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor        text NOT NULL,
  actor_id     integer,
  kind         text NOT NULL,                     -- reported, verified, level, activated, task.*, …
  message      text NOT NULL,
  detail       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX incident_event_incident_idx ON incident_event (incident_id, id);

-- ---------------------------------------------------------------- plans in force
CREATE TABLE plan_activation (                    -- 预案启动 (one row per level reached)
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  incident_id   bigint NOT NULL REFERENCES incident(id) ON DELETE CASCADE,
  plan_id       text NOT NULL,
  plan_version  integer NOT NULL,
  level         text NOT NULL CHECK (level IN ('Ⅰ', 'Ⅱ', 'Ⅲ', 'Ⅳ')),
  automatic     boolean NOT NULL,
  activated_at  timestamptz NOT NULL,
  activated_by  text NOT NULL,
  document      jsonb NOT NULL,                   -- the plan as it was run
  UNIQUE (incident_id, plan_id, level),
  UNIQUE (id, plan_id)                            -- for incident_task's (activation_id, plan_id)
);

CREATE TABLE incident_task (                      -- a plan step made a task
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  incident_id    bigint NOT NULL REFERENCES incident(id) ON DELETE CASCADE,
  activation_id  bigint NOT NULL,
  plan_id        text NOT NULL,                   -- the activation's plan: step ids are unique only within a plan
  step_id        text NOT NULL,
  level          text NOT NULL,
  title          text NOT NULL,
  role           text NOT NULL,                   -- the plan's organisation role
  post_id        integer REFERENCES duty_post(id),
  owner_user_id  integer REFERENCES app_user(id), -- the post's on-duty holder at activation
  mandatory      boolean NOT NULL,
  depends_on     text[] NOT NULL DEFAULT '{}',      -- step ids of the same plan
  resources      jsonb NOT NULL DEFAULT '[]'::jsonb,   -- [{type, count}]
  checklist      jsonb NOT NULL DEFAULT '[]'::jsonb,   -- [{item, done}]
  status         text NOT NULL CHECK (status IN ('blocked', 'open', 'in_progress', 'done', 'waived', 'cancelled')),
  due_at         timestamptz NOT NULL,
  started_at     timestamptz,
  finished_at    timestamptz,
  note           text,
  waived_reason  text,
  waived_by      text,
  escalated_at   timestamptz,                     -- the overdue escalation fired (督办)
  version        integer NOT NULL DEFAULT 1,
  -- Two plans on one incident (燃气泄漏 and 道路塌陷) may both have a `verify` step.
  UNIQUE (incident_id, plan_id, step_id),
  FOREIGN KEY (activation_id, plan_id) REFERENCES plan_activation (id, plan_id) ON DELETE CASCADE
);
-- The timer loop's scan: unfinished tasks not yet escalated, by deadline.
CREATE INDEX incident_task_due_idx ON incident_task (due_at)
  WHERE escalated_at IS NULL AND status IN ('blocked', 'open', 'in_progress');
CREATE INDEX incident_task_owner_idx ON incident_task (owner_user_id) WHERE status IN ('open', 'in_progress');

-- ---------------------------------------------------------------- resources sent
ALTER TABLE resource ADD COLUMN unit_id integer REFERENCES unit(id);   -- a tracked team or vehicle
-- "Every resource within 500 m, whatever its status" (the situation view).
CREATE INDEX resource_location_idx ON resource USING gist (location);

CREATE TABLE dispatch_order (                     -- 调度指令
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  incident_id   bigint NOT NULL REFERENCES incident(id) ON DELETE CASCADE,
  task_id       bigint REFERENCES incident_task(id) ON DELETE SET NULL,
  resource_id   bigint NOT NULL REFERENCES resource(id),
  quantity      integer NOT NULL CHECK (quantity > 0),
  status        text NOT NULL DEFAULT 'sent' CHECK (status IN ('sent', 'acknowledged', 'arrived', 'released', 'refused')),
  ordered_by    text NOT NULL,
  ordered_at    timestamptz NOT NULL DEFAULT now(),
  ack_due_at    timestamptz NOT NULL,             -- not acknowledged by then: escalated
  acked_at      timestamptz,
  arrived_at    timestamptz,
  released_at   timestamptz,
  escalated_at  timestamptz,
  note          text,
  command_id    bigint REFERENCES unit_command(id) ON DELETE SET NULL
);
CREATE INDEX dispatch_order_incident_idx ON dispatch_order (incident_id);
CREATE INDEX dispatch_order_ack_idx ON dispatch_order (ack_due_at) WHERE status = 'sent' AND escalated_at IS NULL;

-- ---------------------------------------------------------------- public warnings
CREATE TABLE alert (                              -- a CAP 1.2 message (预警信息)
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  identifier    text NOT NULL UNIQUE,
  incident_id   bigint NOT NULL REFERENCES incident(id) ON DELETE CASCADE,
  msg_type      text NOT NULL CHECK (msg_type IN ('Alert', 'Update', 'Cancel')),
  status        text NOT NULL CHECK (status IN ('Actual', 'Exercise')),
  references_id bigint REFERENCES alert(id),      -- the message this one updates or cancels
  level         text NOT NULL,
  headline      text NOT NULL,
  body          jsonb NOT NULL,                   -- the filled template (event, description, …) and area
  state         text NOT NULL DEFAULT 'draft' CHECK (state IN ('draft', 'issued', 'rejected', 'superseded', 'cancelled')),
  drafted_by    text NOT NULL,
  drafted_at    timestamptz NOT NULL DEFAULT now(),
  decided_by    text,                             -- the commander who approved (签发) or rejected it
  decided_at    timestamptz,
  sent_at       timestamptz,                      -- CAP <sent>, fixed at issue
  expires_at    timestamptz,
  xml           text                              -- the issued message, exactly as served
);
CREATE INDEX alert_incident_idx ON alert (incident_id, id);
CREATE INDEX alert_issued_idx ON alert (sent_at) WHERE state = 'issued';

ALTER TABLE notification ADD COLUMN incident_id bigint REFERENCES incident(id) ON DELETE CASCADE;
-- (The app role's rights on these tables come from the default privileges of 0001.)
