-- Cameras (视频监控): the registry with each camera's view sector, its zones, status and the
-- lease a `citygrid video` worker holds on it; the events the workers write (motion, dwell)
-- and the dwell objects an operator dismissed, so they do not alarm again.

CREATE TABLE camera (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  url            text NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),   -- main stream (viewing)
  sub_url        text CHECK (length(sub_url) BETWEEN 1 AND 2000),        -- analysis sub-stream; null: url
  location       geometry(Point, 4326) NOT NULL,
  grid_code      char(15) REFERENCES grid(code),     -- derived; add_camera refuses a place outside every grid
  bearing_deg    double precision NOT NULL CHECK (bearing_deg >= 0 AND bearing_deg <= 360),  -- clockwise from north
  fov_deg        double precision NOT NULL CHECK (fov_deg >= 1 AND fov_deg <= 360),
  range_m        double precision NOT NULL CHECK (range_m >= 1 AND range_m <= 1000),
  height_m       real CHECK (height_m >= 0 AND height_m <= 300),
  group_name     text CHECK (length(group_name) BETWEEN 1 AND 100),      -- video-wall group
  dept_id        integer REFERENCES department(id),  -- owner
  -- what it sees on the ground: computed from location, bearing, fov and range (video/cameras.py)
  sector         geometry(Polygon, 4326) NOT NULL CHECK (ST_IsValid(sector)),
  zones          jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(zones) = 'array'),  -- video/zones.py
  analysis_fps   real NOT NULL DEFAULT 5 CHECK (analysis_fps > 0 AND analysis_fps <= 30),
  active         boolean NOT NULL DEFAULT true,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),  -- registry fields (not status) last changed
  -- status, written by the worker that holds it
  online         boolean,                            -- null: no worker has tried it yet
  status_reason  text,                               -- why it is offline (timeout, refused, garbage …)
  status_at      timestamptz,
  last_frame_at  timestamptz,
  measured_fps   real,
  -- lease: the worker analysing it (video/leases.py); free when lease_until has passed
  lease_owner    text,
  lease_until    timestamptz
);
CREATE INDEX camera_location_idx ON camera USING gist (location);
CREATE INDEX camera_sector_idx ON camera USING gist (sector);
CREATE INDEX camera_grid_idx ON camera (grid_code);
CREATE INDEX camera_group_idx ON camera (group_name);
-- Claims look for active cameras whose lease is missing or past (FOR UPDATE SKIP LOCKED).
CREATE INDEX camera_lease_idx ON camera (lease_until NULLS FIRST, id) WHERE active;

CREATE TABLE camera_event (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  camera_id        bigint NOT NULL REFERENCES camera(id) ON DELETE CASCADE,
  local_id         text NOT NULL CHECK (length(local_id) BETWEEN 1 AND 100),   -- the worker's own event id
  kind             text NOT NULL CHECK (kind IN ('motion', 'dwell')),
  zone_id          text,                              -- the zone it happened in (null: the whole picture)
  event_class      char(4) REFERENCES event_class(code),
  started_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  ended_at         timestamptz,
  boxes            jsonb NOT NULL DEFAULT '[]',       -- [[x0, y0, x1, y1], …] normalised 0…1
  score            real,
  snapshot         text,                              -- JPEG path relative to data_dir (boxes drawn)
  before_snapshot  text,                              -- dwell: the scene before the object came
  grid_code        char(15) REFERENCES grid(code),
  location         geometry(Point, 4326),
  case_id          bigint REFERENCES case_file(id),
  status           text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'ended', 'confirmed', 'dismissed')),
  UNIQUE (camera_id, local_id),                       -- a retried write is a no-op
  CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE INDEX camera_event_camera_idx ON camera_event (camera_id, started_at DESC);
CREATE INDEX camera_event_open_idx ON camera_event (camera_id) WHERE status = 'open';
CREATE INDEX camera_event_case_idx ON camera_event (case_id) WHERE case_id IS NOT NULL;

-- A dwell object an operator dismissed (误报): the worker skips a new object at the same
-- place in the same zone, also after a restart.
CREATE TABLE camera_dismissal (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  camera_id     bigint NOT NULL REFERENCES camera(id) ON DELETE CASCADE,
  zone_id       text NOT NULL,
  box           jsonb NOT NULL,                       -- [x0, y0, x1, y1] normalised 0…1
  event_id      bigint REFERENCES camera_event(id) ON DELETE SET NULL,
  dismissed_by  text NOT NULL,
  dismissed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX camera_dismissal_camera_idx ON camera_dismissal (camera_id, zone_id);
