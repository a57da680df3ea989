-- 0003: a change counter for the unit grid table, so caches built from grid geometry
-- (gis.grid_index.GridIndexCache) notice every change. count(*) and max(updated_at) miss
-- two: a long import that commits after a later, shorter one (its updated_at is older),
-- and SQL that changes a grid without touching updated_at.
CREATE TABLE grid_version (
  id  int PRIMARY KEY DEFAULT 1 CHECK (id = 1),   -- one row only
  n   bigint NOT NULL
);
INSERT INTO grid_version (id, n) VALUES (1, 0);

-- Once per statement, not per row: a 10,000-grid import bumps the counter once. The bump
-- runs in the changing transaction, so readers see the new n exactly when they can see
-- the change; concurrent grid writers queue on this one row until the first commits.
CREATE FUNCTION grid_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE grid_version SET n = n + 1;
  RETURN NULL;
END $$;

CREATE TRIGGER grid_version_bump AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON grid
  FOR EACH STATEMENT EXECUTE FUNCTION grid_version_bump();

-- The trigger runs as whoever changes grid, so the app role must be able to bump the
-- counter; it never needs to add or remove the row (the default privileges of 0001 would
-- grant INSERT and DELETE too).
REVOKE ALL ON grid_version FROM citygrid_app;
GRANT SELECT, UPDATE ON grid_version TO citygrid_app;
