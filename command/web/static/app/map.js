// The city map: our own base map (water, buildings, roads), unit grids and parts.
const PART_COLOURS = { "01": "#1f77b4", "02": "#ff7f0e", "03": "#2ca02c", "04": "#17becf",
                       "05": "#9467bd", "06": "#d62728" };
const STATUS_COLOURS = { "完好": null, "破损": "#e6a700", "丢失": "#d00000", "占用": "#7a3cc2" };
const PARTS_MIN_ZOOM = 16;
let map, catalog;

function totalParts(counties) {
  return counties.reduce((n, c) => n + c.parts, 0);
}

function escapeHtml(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

async function showApp(user) {
  document.getElementById("login").hidden = true;
  document.getElementById("app").hidden = false;
  document.getElementById("logout").hidden = false;
  document.getElementById("who").textContent = `${user.display_name} · ${user.role_name}`;
  await drawMap();
}

async function drawMap() {
  map = L.map("map", { preferCanvas: true, zoomSnap: 0.5, attributionControl: false });
  const { data: ext } = await api.get("/api/extent");
  const b = ext.bbox || [113.33, 26.99, 113.36, 27.01];
  map.fitBounds([[b[1], b[0]], [b[3], b[2]]]);
  map.createPane("base").style.zIndex = 200;

  const [water, buildings, roads, grids, cat, areas] = await Promise.all([
    api.get("/api/basemap/water"), api.get("/api/basemap/buildings"), api.get("/api/basemap/roads"),
    api.allFeatures("/api/grids?limit=5000"), api.get("/api/catalog"), api.get("/api/areas"),
  ]);
  catalog = cat.data;
  const waterLayer = L.geoJSON(water.data, { pane: "base", style: { color: "#7fb3e0", weight: 1, fillColor: "#b9d8f2", fillOpacity: 1 } }).addTo(map);
  const buildingLayer = L.geoJSON(buildings.data, { pane: "base", style: { color: "#c9c2b8", weight: 0.5, fillColor: "#e3ddd3", fillOpacity: 1 } }).addTo(map);
  const roadLayer = L.geoJSON(roads.data, {
    pane: "base",
    style: (f) => ({ color: f.properties.kind === "主干道" ? "#f3c26b" : "#ffffff", weight: Math.max(1.5, f.properties.width_m / 4), opacity: 1 }),
  }).addTo(map);
  const gridLayer = L.geoJSON(grids, {
    style: { color: "#3a6ea5", weight: 1, fill: true, fillOpacity: 0.03 },
    onEachFeature: (f, layer) => layer.bindTooltip(`${escapeHtml(f.properties.name)}<br>${f.properties.code}`, { sticky: true }),
  }).addTo(map);
  const partLayer = L.geoJSON(null, {
    pointToLayer: (f, latlng) => L.circleMarker(latlng, {
      radius: 3, weight: STATUS_COLOURS[f.properties.status] ? 2 : 0.5,
      color: STATUS_COLOURS[f.properties.status] || "#ffffff",
      fillColor: PART_COLOURS[f.properties.class_code.slice(0, 2)] || "#555", fillOpacity: 0.9,
    }),
    onEachFeature: (f, layer) => layer.bindPopup(() => partPopup(f.properties)),
  }).addTo(map);
  // Tens of thousands of parts: draw those in view, and only when zoomed in far enough to tell them apart.
  const refreshParts = async () => {
    partLayer.clearLayers();
    const note = document.getElementById("parts-note");
    if (map.getZoom() < PARTS_MIN_ZOOM) { note.textContent = t("parts_zoom"); return; }
    const v = map.getBounds();
    const bbox = [v.getWest(), v.getSouth(), v.getEast(), v.getNorth()].map((n) => n.toFixed(6)).join(",");
    const page = await api.get(`/api/parts?limit=5000&bbox=${bbox}`);
    partLayer.addData(page.data);
    // Say so when the view holds more than one page, rather than silently dropping parts.
    note.textContent = page.next ? t("parts_truncated") : "";
  };
  map.on("moveend", refreshParts);
  L.control.layers(null, {
    [t("water")]: waterLayer, [t("buildings")]: buildingLayer, [t("roads")]: roadLayer,
    [t("grids")]: gridLayer, [t("parts")]: partLayer,
  }).addTo(map);
  L.control.scale({ imperial: false }).addTo(map);
  map.on("click", (e) => lookup(e.latlng));

  const streets = areas.data.flatMap((c) => c.streets);
  const communities = streets.flatMap((s) => s.communities);
  document.getElementById("stats").innerHTML =
    `<p>${escapeHtml(areas.data.map((c) => c.name).join("、"))}</p>` +
    `<p><b>${streets.length}</b> ${t("streets")} · <b>${communities.length}</b> ${t("communities")} · ` +
    `<b>${grids.features.length}</b> ${t("grids")} · <b>${totalParts(areas.data)}</b> ${t("parts")}</p>`;
  document.getElementById("legend").innerHTML = catalog.parts.filter((b) => b.classes.length).map((b) =>
    `<li><span class="dot" style="background:${PART_COLOURS[b.code] || "#555"}"></span>${escapeHtml(b.name)}</li>`).join("");
  await refreshParts();
  document.body.dataset.ready = "true";   // for browser tests and screenshots
}

function partPopup(p) {
  return `<b>${escapeHtml(p.name)}</b><br>${t("code")}: ${p.id}<br>${t("klass")}: ${escapeHtml(p.class_name)}` +
         `<br>${t("status")}: ${escapeHtml(p.status)}<br>${t("grid")}: ${p.grid_code}`;
}

async function lookup(latlng) {
  const box = document.getElementById("lookup");
  box.textContent = t("loading");
  try {
    const { data } = await api.get(`/api/geocode?lon=${latlng.lng.toFixed(7)}&lat=${latlng.lat.toFixed(7)}`);
    const near = data.nearest_parts.map((p) => `<li>${escapeHtml(p.class_name)} ${p.id} · ${p.distance_m} m</li>`).join("");
    box.innerHTML = `<p>${t("grid")}: <b>${escapeHtml(data.grid_name)}</b> ${data.grid_code}<br>` +
      `${t("community")}: ${escapeHtml(data.community_name)}<br>${t("street")}: ${escapeHtml(data.street_name)}` +
      `<br>${t("county")}: ${escapeHtml(data.county_name)}</p><p>${t("nearest")}:</p><ul>${near || `<li>${t("none")}</li>`}</ul>`;
  } catch (err) {
    box.textContent = err.message.includes("outside") ? t("outside") : err.message;
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  const form = document.getElementById("login");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await showApp(await api.login(form.username.value, form.password.value));
    } catch (err) {
      document.getElementById("login-error").textContent = err.message;
    }
  });
  document.getElementById("logout").addEventListener("click", () => { api.logout(); location.reload(); });
  if (api.token) {
    try { return await showApp((await api.get("/api/me")).data); } catch (err) { api.logout(); }
  }
  form.hidden = false;
});
