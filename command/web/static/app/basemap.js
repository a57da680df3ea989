// The offline base map (water, buildings, roads from our own PostGIS layers) and the unit
// grids, for a box around a point: the small maps of the case pages need only a
// neighbourhood, not the whole county.
const BASE_HALF_DEG = 0.006;        // a neighbourhood: ~600 m each way
const BASE_STYLES = {
  water: { color: "#7fb3e0", weight: 1, fillColor: "#b9d8f2", fillOpacity: 1 },
  buildings: { color: "#c9c2b8", weight: 0.5, fillColor: "#e3ddd3", fillOpacity: 1 },
};

function boxAround(latlng, half) {
  return [latlng.lng - half, latlng.lat - half, latlng.lng + half, latlng.lat + half];
}

function boxParam(box) {
  return box.map((n) => n.toFixed(6)).join(",");
}

function smallMap(element, center, zoom = 17) {
  const map = L.map(element, { zoomSnap: 0.5, attributionControl: false }).setView(center, zoom);
  map.createPane("base").style.zIndex = 200;
  L.control.scale({ imperial: false }).addTo(map);
  map.baseGroup = L.layerGroup().addTo(map);
  return map;
}

// Replace the base layers with those inside `box` (min_lon, min_lat, max_lon, max_lat).
// A failure (offline) leaves the map blank but usable: the marker still works.
async function drawBaseMap(map, box) {
  const bbox = boxParam(box);
  try {
    const [water, buildings, roads, grids] = await Promise.all([
      api.get(`/api/basemap/water?bbox=${bbox}`), api.get(`/api/basemap/buildings?bbox=${bbox}`),
      api.get(`/api/basemap/roads?bbox=${bbox}`), api.allFeatures(`/api/grids?limit=5000&bbox=${bbox}`),
    ]);
    map.baseGroup.clearLayers();
    map.baseGroup.addLayer(L.geoJSON(water.data, { pane: "base", style: BASE_STYLES.water, interactive: false }));
    map.baseGroup.addLayer(L.geoJSON(buildings.data, { pane: "base", style: BASE_STYLES.buildings, interactive: false }));
    map.baseGroup.addLayer(L.geoJSON(roads.data, {
      pane: "base", interactive: false,
      style: (f) => ({ color: f.properties.kind === "主干道" ? "#f3c26b" : "#ffffff",
                       weight: Math.max(1.5, f.properties.width_m / 4), opacity: 1 }),
    }));
    map.baseGroup.addLayer(L.geoJSON(grids, {
      pane: "base", interactive: false, style: { color: "#3a6ea5", weight: 1, fill: true, fillOpacity: 0.03 },
    }));
    return true;
  } catch (err) {
    return false;
  }
}
