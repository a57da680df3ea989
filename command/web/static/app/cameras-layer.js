// Cameras on the city map (/map): each camera's view sector and a marker (its latest picture
// and events in the popup), and the blind-spot overlay (监控盲区): grids by share of their
// street area some camera sees, the blind ones in red, and the suggested new positions with
// what each would add. Loaded once the map is ready; a role without camera.read sees neither.
const camerasLayer = (() => {
  const state = { started: false, cameras: null, coverage: null, coverageLoaded: false };

  function popup(c) {
    const token = encodeURIComponent(api.token);
    const status = c.online === false ? `<span class="error">${t("cam_offline")}</span>` :
      c.online ? t("cam_online") : t("cam_not_tried");
    return `<b>${escapeHtml(c.name)}</b> ${c.group ? `· ${escapeHtml(c.group)}` : ""}<br>${status}` +
      `${c.online === false && c.status_reason ? `<br><small>${escapeHtml(c.status_reason)}</small>` : ""}` +
      `<br><img class="cam-snap" alt="" src="/api/cameras/${c.id}/snapshot.jpg?width=320&token=${token}">` +
      `<br><a href="/wall">${t("nav_wall")}</a> · ${Math.round(c.bearing_deg)}° / ${Math.round(c.fov_deg)}° / ${Math.round(c.range_m)} m`;
  }

  function shareColour(share) {
    if (share === null || share === undefined) return "#999";
    return share < 0.2 ? "#d7301f" : share < 0.5 ? "#fc8d59" : share < 0.8 ? "#fdcc8a" : "#31a354";
  }

  async function loadCoverage() {
    if (state.coverageLoaded) return;
    state.coverageLoaded = true;
    const [grids, picks] = await Promise.all([api.get("/api/coverage"), api.get("/api/coverage/suggestions?k=5")]);
    L.geoJSON(grids.data, {
      filter: (f) => f.properties.street_m2 > 0,
      style: (f) => ({ color: shareColour(f.properties.share), weight: 0.5, fillColor: shareColour(f.properties.share), fillOpacity: 0.45 }),
      onEachFeature: (f, layer) => layer.bindTooltip(
        `${f.properties.code}<br>${t("cov_share")} ${Math.round(100 * (f.properties.share || 0))}%`, { sticky: true }),
    }).addTo(state.coverage);
    L.geoJSON(picks.data, {
      pointToLayer: (f, latlng) => L.marker(latlng, { icon: L.divIcon({ className: "cam-suggest", html: `${f.properties.rank}` }) }),
      onEachFeature: (f, layer) => layer.bindTooltip(
        `${t("cov_suggest")} ${f.properties.rank}: ${Math.round(f.properties.bearing_deg)}° · +${Math.round(f.properties.gain_m2)} m²`),
    }).addTo(state.coverage);
    document.body.dataset.coverage = "ready";
  }

  async function start() {
    if (state.started || typeof map === "undefined" || !map) return;
    state.started = true;
    let cameras;
    try {
      cameras = (await api.get("/api/cameras")).data.filter((c) => c.active);
    } catch (err) {
      document.body.dataset.cameras = "off";
      return;
    }
    state.cameras = L.layerGroup();
    for (const c of cameras) {
      L.geoJSON(c.sector, { style: { color: "#6a3d9a", weight: 1, fillColor: "#cab2d6", fillOpacity: 0.35 }, interactive: false })
        .addTo(state.cameras);
      L.circleMarker([c.lat, c.lon], { radius: 6, color: "#fff", weight: 2, fillColor: c.online === false ? "#888" : "#6a3d9a", fillOpacity: 1 })
        .bindPopup(() => popup(c), { minWidth: 330 })
        .addTo(state.cameras);
    }
    state.cameras.addTo(map);
    state.coverage = L.layerGroup();
    state.coverage.on("add", () => loadCoverage().catch((err) => { document.body.dataset.coverage = "error"; console.warn(err); }));
    L.control.layers(null, { [t("cam_layer")]: state.cameras, [t("cov_layer")]: state.coverage }, { collapsed: false })
      .addTo(map);
    document.body.dataset.cameras = String(cameras.length);
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (document.body.dataset.ready === "true") { start(); return; }
    new MutationObserver((_, obs) => {
      if (document.body.dataset.ready === "true") { obs.disconnect(); start(); }
    }).observe(document.body, { attributes: true, attributeFilter: ["data-ready"] });
  });
  return state;
})();
