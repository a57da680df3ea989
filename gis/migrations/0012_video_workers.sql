-- The `citygrid video` workers alive (each says so every third of a lease period): cameras
-- are shared out among these, so a worker that has just started, holding nothing yet, counts.
CREATE TABLE video_worker (
  name     text PRIMARY KEY,
  seen_at  timestamptz NOT NULL
);
