-- Emergency resources (应急资源): teams, vehicles, equipment, supplies in warehouses and
-- shelters, each of a type from workflows/seed/resource_types.yaml, at a place, with a status.
-- `quantity` is the stock of a supply, the places of a shelter, 1 for a team or a vehicle.
CREATE TABLE resource (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  type_code   text NOT NULL,
  location    geometry(Point, 4326) NOT NULL,
  grid_code   char(15) REFERENCES grid(code),
  status      text NOT NULL DEFAULT 'available' CHECK (status IN ('available', 'assigned', 'out_of_service')),
  quantity    integer NOT NULL DEFAULT 1 CHECK (quantity >= 0),
  contact     text,
  dept_id     integer REFERENCES department(id),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
-- "The nearest available pumps": a nearest-neighbour scan over the available ones only.
CREATE INDEX resource_available_idx ON resource USING gist (location) WHERE status = 'available';
CREATE INDEX resource_type_idx ON resource (type_code, status);
