-- 0002: the case closed loop (案卷): cases, their append-only history, reporters, photos,
-- pauses and extensions, timers, notifications, routing, Open311 keys.

-- Who is responsible for an area (属地): a street office or community, by admin-code prefix.
CREATE TABLE area_department (
  area_code  text NOT NULL CHECK (area_code ~ '^[0-9]{6}([0-9]{3}){0,3}$'),
  dept_id    integer NOT NULL REFERENCES department(id),
  PRIMARY KEY (area_code)
);

-- The routing matrix: parts go to their owner first (先属主), events to the area first
-- (先属地); a rule overrides both for a class (or big class) within an area. Most specific wins.
CREATE TABLE routing_rule (
  id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind        text NOT NULL CHECK (kind IN ('event', 'part')),
  class_code  text CHECK (class_code ~ '^[0-9]{2}([0-9]{2})?$'),        -- big (2) or small (4) class; NULL = any
  area_code   text CHECK (area_code ~ '^[0-9]{6}([0-9]{3}){0,3}$'),     -- NULL = whole jurisdiction
  dept_id     integer NOT NULL REFERENCES department(id),
  note        text,
  UNIQUE NULLS NOT DISTINCT (kind, class_code, area_code)
);

CREATE TABLE case_file (                         -- 案卷
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  case_no           text NOT NULL UNIQUE,          -- human number: YYYYMMDD + 5-digit daily sequence
  kind              text NOT NULL CHECK (kind IN ('event', 'part')),   -- 事件 / 部件
  event_class       char(4) REFERENCES event_class(code),
  part_class        char(4) REFERENCES part_class(code),
  part_id           char(16) REFERENCES part(id),
  description       text NOT NULL DEFAULT '',
  address           text,
  source            text NOT NULL CHECK (source IN ('inspector', 'public', 'hotline', 'device', 'video')),
  state             text NOT NULL,
  grid_code         char(15) NOT NULL REFERENCES grid(code),
  location          geometry(Point, 4326) NOT NULL,
  dept_id           integer REFERENCES department(id),        -- the department handling it
  suggested_dept_id integer REFERENCES department(id),        -- the routing matrix's answer
  assignee_id       integer REFERENCES app_user(id),          -- inspector holding the 核实/核查 task
  duplicate_of      bigint REFERENCES case_file(id),
  rework_count      integer NOT NULL DEFAULT 0,               -- 返工
  return_count      integer NOT NULL DEFAULT 0,               -- 退回
  -- clocks: the current stage's, and the handling limit (处置时限) once dispatched
  stage             text,                                     -- 核实/立案/派遣/核查/结案
  stage_limit_kind  text CHECK (stage_limit_kind IN ('工作时', '工作日', '自然时')),
  stage_started_at  timestamptz,
  stage_warn_at     timestamptz,
  stage_deadline    timestamptz,
  handle_limit_kind text CHECK (handle_limit_kind IN ('工作时', '工作日', '自然时')),
  handle_started_at timestamptz,
  handle_warn_at    timestamptz,
  handle_deadline   timestamptz,
  paused_at         timestamptz,                              -- set while suspended (挂账)
  version           integer NOT NULL DEFAULT 1,               -- optimistic concurrency
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  closed_at         timestamptz,
  public_key        uuid NOT NULL DEFAULT gen_random_uuid(),   -- the reporter's way to follow it
  CHECK ((kind = 'event') = (event_class IS NOT NULL) AND (kind = 'part') = (part_class IS NOT NULL))
);
CREATE INDEX case_file_location_idx ON case_file USING gist (location);
CREATE INDEX case_file_state_idx ON case_file (state);
CREATE INDEX case_file_grid_idx ON case_file (grid_code);
CREATE INDEX case_file_dept_idx ON case_file (dept_id) WHERE dept_id IS NOT NULL;
CREATE INDEX case_file_created_idx ON case_file (created_at);
CREATE INDEX case_file_dup_idx ON case_file (coalesce(event_class, part_class), created_at);
CREATE INDEX case_file_part_idx ON case_file (part_id) WHERE part_id IS NOT NULL;

-- Every transition, append-only: who, when, from, to, note.
CREATE TABLE case_transition (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  case_id     bigint NOT NULL REFERENCES case_file(id),
  at          timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor_id    integer REFERENCES app_user(id),
  actor       text NOT NULL,
  role        text NOT NULL,
  action      text NOT NULL,
  from_state  text,
  to_state    text NOT NULL,
  note        text,
  detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX case_transition_case_idx ON case_transition (case_id, id);
CREATE INDEX case_transition_action_idx ON case_transition (action, at);
CREATE INDEX case_transition_at_idx ON case_transition (at);
CREATE TRIGGER case_transition_append_only BEFORE UPDATE OR DELETE ON case_transition
  FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();

-- Everyone who reported the problem (merged duplicates keep theirs). client_ref makes a
-- replayed offline or Open311 submission land once.
CREATE TABLE case_reporter (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  case_id     bigint NOT NULL REFERENCES case_file(id),
  source      text NOT NULL,
  user_id     integer REFERENCES app_user(id),
  name        text,
  phone       text,
  email       text,
  client_ref  text UNIQUE,
  reported_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_reporter_case_idx ON case_reporter (case_id);

CREATE TABLE case_photo (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  case_id       bigint NOT NULL REFERENCES case_file(id),
  transition_id bigint REFERENCES case_transition(id),
  kind          text NOT NULL CHECK (kind IN ('report', 'before', 'after', 'evidence')),
  path          text NOT NULL,            -- under CITYGRID_DATA_DIR
  thumb_path    text NOT NULL,
  width         integer NOT NULL,
  height        integer NOT NULL,
  bytes         integer NOT NULL,
  sha256        text NOT NULL,
  uploaded_by   text NOT NULL,
  at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_photo_case_idx ON case_photo (case_id);

CREATE TABLE case_pause (                        -- 挂账: the clock stops
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  case_id    bigint NOT NULL REFERENCES case_file(id),
  started_at timestamptz NOT NULL,
  ended_at   timestamptz,
  reason     text NOT NULL
);

CREATE TABLE case_extension (                    -- 延期
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  case_id      bigint NOT NULL REFERENCES case_file(id),
  limit_kind   text NOT NULL CHECK (limit_kind IN ('工作时', '工作日', '自然时')),
  amount       numeric NOT NULL CHECK (amount > 0),
  reason       text NOT NULL,
  requested_by text NOT NULL,
  requested_at timestamptz NOT NULL DEFAULT now(),
  status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
  decided_by   text,
  decided_at   timestamptz
);
CREATE UNIQUE INDEX case_extension_one_pending ON case_extension (case_id) WHERE status = 'pending';

-- Timers live in the database so they survive restarts and are shared by replicas
-- (claimed with FOR UPDATE SKIP LOCKED). A timer belongs to one clock generation of a
-- case; when the clock moves, old timers are cancelled and new ones written.
CREATE TABLE case_timer (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  case_id    bigint NOT NULL REFERENCES case_file(id),
  kind       text NOT NULL CHECK (kind IN ('stage_warn', 'stage_due', 'handle_warn', 'handle_due')),
  due_at     timestamptz NOT NULL,
  fired_at   timestamptz,
  cancelled  boolean NOT NULL DEFAULT false
);
CREATE INDEX case_timer_due_idx ON case_timer (due_at) WHERE fired_at IS NULL AND NOT cancelled;
CREATE INDEX case_timer_case_idx ON case_timer (case_id) WHERE fired_at IS NULL AND NOT cancelled;

-- Notifications to a user or to a role (within an area), e.g. 督办 escalations.
CREATE TABLE notification (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at           timestamptz NOT NULL DEFAULT now(),
  user_id      integer REFERENCES app_user(id),
  role         text,
  dept_id      integer REFERENCES department(id),
  kind         text NOT NULL,
  case_id      bigint REFERENCES case_file(id),
  message      text NOT NULL,
  read_at      timestamptz,
  CHECK (user_id IS NOT NULL OR role IS NOT NULL OR dept_id IS NOT NULL)
);
CREATE INDEX notification_user_idx ON notification (user_id, id) WHERE read_at IS NULL;
CREATE INDEX notification_role_idx ON notification (role, id);

-- Inspectors' duty: who is on duty now (the patrol work fills shifts; until then a flag).
ALTER TABLE app_user ADD COLUMN on_duty boolean NOT NULL DEFAULT true;

-- Open311 API keys (only a hash is kept).
CREATE TABLE api_key (
  id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name       text NOT NULL,
  key_hash   text NOT NULL UNIQUE,
  active     boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- The daily case number sequence.
CREATE TABLE case_number (
  day  date PRIMARY KEY,
  last integer NOT NULL
);

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO citygrid_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO citygrid_app;
REVOKE UPDATE, DELETE, TRUNCATE ON case_transition FROM citygrid_app;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM citygrid_app;
REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM citygrid_app;

-- Handling limits for part problems (the catalog gives limits for events only).
ALTER TABLE part_class ADD COLUMN limit_kind text CHECK (limit_kind IN ('工作时', '工作日', '自然时'));
ALTER TABLE part_class ADD COLUMN limit_value numeric CHECK (limit_value > 0);
