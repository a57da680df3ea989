-- 0001: the spine — catalog, administrative hierarchy, unit grids, parts, base map,
-- users, departments and the append-only audit log.
CREATE EXTENSION IF NOT EXISTS postgis;

-- The role the application runs as (SET ROLE after connect). It may read and write
-- domain tables but never rewrite history: UPDATE/DELETE on audit_log are not granted.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'citygrid_app') THEN
    CREATE ROLE citygrid_app NOLOGIN;
  END IF;
  -- the migrating owner must be able to SET ROLE citygrid_app for its app connections
  IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    EXECUTE format('GRANT citygrid_app TO %I', current_user);
  END IF;
END $$;

-- ---------------------------------------------------------------- catalog (部件/事件)
CREATE TABLE part_big_class (
  code  char(2) PRIMARY KEY CHECK (code ~ '^[0-9]{2}$'),
  name  text NOT NULL
);
CREATE TABLE part_class (
  code      char(4) PRIMARY KEY CHECK (code ~ '^[0-9]{4}$'),
  big_code  char(2) NOT NULL REFERENCES part_big_class(code),
  name      text NOT NULL,
  std       boolean NOT NULL DEFAULT false,   -- confirmed from the national standard
  CHECK (substr(code, 1, 2) = big_code)
);
CREATE TABLE event_big_class (
  code  char(2) PRIMARY KEY CHECK (code ~ '^[0-9]{2}$'),
  name  text NOT NULL
);
CREATE TABLE event_class (
  code        char(4) PRIMARY KEY CHECK (code ~ '^[0-9]{4}$'),
  big_code    char(2) NOT NULL REFERENCES event_big_class(code),
  name        text NOT NULL,
  std         boolean NOT NULL DEFAULT false,
  limit_kind  text CHECK (limit_kind IN ('工作时', '工作日', '自然时')),  -- handling time limit unit
  limit_value numeric CHECK (limit_value > 0),
  CHECK (substr(code, 1, 2) = big_code)
);
-- The whole catalog document as loaded, for the parts of it later issues read
-- (stage limits, evaluation formulas, emergency categories).
CREATE TABLE catalog_document (
  id         int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
  body       jsonb NOT NULL,
  loaded_at  timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------- administrative hierarchy
-- Codes nest as prefixes: county(6) ⊂ street(9) ⊂ community(12) ⊂ grid(15), so scoping a
-- user to an area is a prefix test on the code.
CREATE TABLE county (                         -- 区县 (GB/T 2260)
  code  char(6) PRIMARY KEY CHECK (code ~ '^[1-8][0-9]{5}$'),
  name  text NOT NULL,
  geom  geometry(MultiPolygon, 4326)
);
CREATE TABLE street (                         -- 街道/镇/乡 (GB/T 10114)
  code         char(9) PRIMARY KEY CHECK (code ~ '^[0-9]{9}$'),
  county_code  char(6) NOT NULL REFERENCES county(code),
  name         text NOT NULL,
  kind         text NOT NULL CHECK (kind IN ('街道', '镇', '乡')),
  geom         geometry(MultiPolygon, 4326),
  CHECK (left(code, 6) = county_code)
);
CREATE TABLE community (                      -- 社区/村
  code         char(12) PRIMARY KEY CHECK (code ~ '^[0-9]{12}$'),
  street_code  char(9) NOT NULL REFERENCES street(code),
  name         text NOT NULL,
  geom         geometry(MultiPolygon, 4326),
  CHECK (left(code, 9) = street_code)
);
CREATE TABLE grid (                           -- 单元网格
  code            char(15) PRIMARY KEY CHECK (code ~ '^[0-9]{15}$'),
  community_code  char(12) NOT NULL REFERENCES community(code),
  name            text,
  population      integer CHECK (population >= 0),
  area_m2         double precision NOT NULL,
  geom            geometry(MultiPolygon, 4326) NOT NULL CHECK (ST_IsValid(geom)),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  CHECK (left(code, 12) = community_code)
);
CREATE INDEX grid_geom_idx ON grid USING gist (geom);
CREATE INDEX street_geom_idx ON street USING gist (geom);
CREATE INDEX community_geom_idx ON community USING gist (geom);

-- ---------------------------------------------------------------- departments (专业部门)
CREATE TABLE department (
  id    integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name  text NOT NULL UNIQUE,
  phone text
);

-- ---------------------------------------------------------------- parts (部件)
CREATE TABLE part (
  id                 char(16) PRIMARY KEY CHECK (id ~ '^[0-9]{16}$'),
  class_code         char(4) NOT NULL REFERENCES part_class(code),
  name               text NOT NULL,
  status             text NOT NULL DEFAULT '完好' CHECK (status IN ('完好', '破损', '丢失', '占用')),
  currency           text NOT NULL DEFAULT '在用' CHECK (currency IN ('在用', '作废')),  -- 现势性
  dept_owner_id      integer REFERENCES department(id),   -- 主管部门
  dept_rights_id     integer REFERENCES department(id),   -- 权属单位
  dept_maintainer_id integer REFERENCES department(id),   -- 养护单位
  grid_code          char(15) NOT NULL REFERENCES grid(code),
  geom               geometry(Geometry, 4326) NOT NULL CHECK (ST_IsValid(geom) AND NOT ST_IsEmpty(geom)),
  location           geometry(Point, 4326) NOT NULL,     -- a point on the part, for grid and nearest look-ups
  source             text NOT NULL DEFAULT '实测' CHECK (source IN ('实测', '地形图', '调绘', '其它')),
  surveyed_on        date,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  photo              text,
  CHECK (left(id, 6) = left(grid_code, 6)),
  CHECK (substr(id, 7, 4) = class_code)
);
CREATE INDEX part_location_idx ON part USING gist (location);
CREATE INDEX part_grid_idx ON part (grid_code);
CREATE INDEX part_class_idx ON part (class_code);

-- ---------------------------------------------------------------- base map (offline)
CREATE TABLE basemap_road (
  id      integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name    text,
  kind    text NOT NULL CHECK (kind IN ('主干道', '次干道', '支路', '步行街')),
  width_m real NOT NULL,
  geom    geometry(LineString, 4326) NOT NULL
);
CREATE TABLE basemap_building (
  id      integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind    text NOT NULL,
  floors  smallint,
  geom    geometry(Polygon, 4326) NOT NULL
);
CREATE TABLE basemap_water (
  id      integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name    text,
  geom    geometry(MultiPolygon, 4326) NOT NULL
);
CREATE INDEX basemap_road_geom_idx ON basemap_road USING gist (geom);
CREATE INDEX basemap_building_geom_idx ON basemap_building USING gist (geom);
CREATE INDEX basemap_water_geom_idx ON basemap_water USING gist (geom);

-- ---------------------------------------------------------------- users and roles
CREATE TABLE app_user (
  id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  username      text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9_.@-]{2,64}$'),
  display_name  text NOT NULL,
  role          text NOT NULL CHECK (role IN ('admin', 'leader', 'commander', 'shift_lead',
                                              'operator', 'dispatcher', 'department', 'inspector')),
  dept_id       integer REFERENCES department(id),
  password_hash text NOT NULL,
  active        boolean NOT NULL DEFAULT true,
  created_at    timestamptz NOT NULL DEFAULT now(),
  CHECK (role <> 'department' OR dept_id IS NOT NULL)
);
-- Area scope: a user sees what lies under any of these admin codes (prefix match).
-- No rows means the whole jurisdiction (command-center roles).
CREATE TABLE user_area (
  user_id    integer NOT NULL REFERENCES app_user(id) ON DELETE CASCADE,
  area_code  text NOT NULL CHECK (area_code ~ '^[0-9]{6}([0-9]{3}){0,3}$'),
  PRIMARY KEY (user_id, area_code)
);

-- ---------------------------------------------------------------- imports and audit
CREATE TABLE import_run (
  id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind        text NOT NULL CHECK (kind IN ('grids', 'parts')),
  source      text NOT NULL,
  actor       text NOT NULL,
  imported    integer NOT NULL,
  rejected    integer NOT NULL,
  report      jsonb NOT NULL,
  at          timestamptz NOT NULL DEFAULT now()
);

-- Append-only: written in the same transaction as the change it records.
CREATE TABLE audit_log (
  id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at        timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor_id  integer,
  actor     text NOT NULL,
  action    text NOT NULL,
  entity    text NOT NULL,
  entity_id text,
  detail    jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_entity_idx ON audit_log (entity, entity_id);
CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();

-- ---------------------------------------------------------------- grants for the app role
GRANT USAGE ON SCHEMA public TO citygrid_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO citygrid_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO citygrid_app;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM citygrid_app;
REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM citygrid_app;
-- Tables later migrations create get the same grants by default.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO citygrid_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO citygrid_app;
