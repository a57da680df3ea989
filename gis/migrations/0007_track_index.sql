-- Track replay reads one unit's fixes over a day (86,400 at 1 Hz). Among other units'
-- fixes those rows lie on thousands of heap pages; carrying the columns the replay needs
-- in the index lets it read them from a few hundred index pages instead (an index-only
-- scan once the visibility map covers the day, as it does for any day past).
DROP INDEX position_unit_time_idx;
CREATE INDEX position_unit_time_idx ON position (unit_id, fix_time) INCLUDE (lon, lat, flags);
