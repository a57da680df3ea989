// The situation map of one incident (事件态势, /incidents/{id}/situation): the incident's point,
// its affected area and the search circle on our own base map; a layer per section (cameras,
// resources, units on duty, parts, devices, open cases, affected grids) that can be switched
// off; the lists with their counts; the people likely affected. The radius selector asks
// again; the live bus (/api/live) says when something nearby changed.
Object.assign(STRINGS.zh, {
  sit_title: "事件态势", nav_incidents: "应急指挥", sit_radius: "范围", sit_loading: "加载中…",
  sit_updated: "更新于", sit_truncated: "仅显示最近的", sit_none: "无",
  sit_cameras: "可见摄像机", sit_resources: "应急资源", sit_units: "在岗巡查力量", sit_parts: "部件",
  sit_devices: "感知设备", sit_cases: "未结案卷", sit_grids: "影响网格",
  sit_population: "影响人口（估算）", sit_people: "人", sit_pop_total: "网格总人口",
  sit_pop_unknown: "个网格无人口数据", sit_basis_area: "按事件影响范围", sit_basis_radius: "按搜索半径",
  sit_sees_point: "可见事发点", sit_sees_area: "可见影响区", sit_online: "在线", sit_offline: "离线",
  sit_unknown: "未知", sit_alarm: "告警", sit_ago: "前", sit_min: "分钟", sit_s: "秒", sit_h: "小时",
  sit_share: "影响比例", sit_level: "级", sit_drill: "演练", sit_snapshot: "实时画面",
  sit_status_available: "可用", sit_status_assigned: "已调派", sit_status_out_of_service: "停用",
  sit_live_lost: "实时连接中断，正在重连…",
});
Object.assign(STRINGS.en, {
  sit_title: "Incident situation", nav_incidents: "Emergencies", sit_radius: "Radius", sit_loading: "Loading…",
  sit_updated: "Updated", sit_truncated: "showing the nearest", sit_none: "None",
  sit_cameras: "Cameras that see it", sit_resources: "Resources", sit_units: "Units on duty", sit_parts: "Parts",
  sit_devices: "Devices", sit_cases: "Open cases", sit_grids: "Affected grids",
  sit_population: "People affected (estimate)", sit_people: "people", sit_pop_total: "population of the grids",
  sit_pop_unknown: "grids without a population figure", sit_basis_area: "by the incident's affected area",
  sit_basis_radius: "by the search radius",
  sit_sees_point: "sees the spot", sit_sees_area: "sees the area", sit_online: "online", sit_offline: "offline",
  sit_unknown: "unknown", sit_alarm: "alarm", sit_ago: "ago", sit_min: "min", sit_s: "s", sit_h: "h",
  sit_share: "share", sit_level: "level", sit_drill: "Drill", sit_snapshot: "Live picture",
  sit_status_available: "available", sit_status_assigned: "assigned", sit_status_out_of_service: "out of service",
  sit_live_lost: "Live connection lost, reconnecting…",
});

const SIT_SECTIONS = ["cameras", "resources", "units", "parts", "devices", "cases", "grids"];
const SIT_GLYPHS = { cameras: "摄", resources: "资", units: "巡", devices: "感", cases: "案" };
const SIT_RELOAD_MS = 2000;
// Kinds on the live bus that may change what is near (incident: only ours).
const SIT_LIVE_KINDS = new Set(["unit_position", "unit_alarm", "device_alarm", "case", "camera"]);

const sit = {
  id: null, map: null, data: null, radius: null, loads: 0,
  layers: {}, incidentLayer: null, shown: {},

  async start() {
    this.id = Number($("#app").dataset.incident);
    this.radius = new URLSearchParams(location.search).get("radius_m");
    const first = await this.load();
    if (!first) return;
    const { lat, lon } = this.data.incident;
    this.map = smallMap("sit-map", [lat, lon], 16);
    window.map = this.map;                           // for the browser tests, as map.js does
    this.incidentLayer = L.layerGroup().addTo(this.map);
    for (const name of SIT_SECTIONS) {
      this.layers[name] = L.layerGroup().addTo(this.map);
      this.shown[name] = true;
    }
    $("#sit-controls").radius.addEventListener("change", (e) => { this.radius = e.target.value; this.refresh(true); });
    $("#sit-sections").addEventListener("change", (e) => {
      const box = e.target.closest("input[data-layer]");
      if (box) this.toggle(box.dataset.layer, box.checked);
    });
    $("#sit-sections").addEventListener("click", (e) => {
      const row = e.target.closest("li[data-lat]");
      if (row) this.map.panTo([Number(row.dataset.lat), Number(row.dataset.lon)]);
    });
    document.addEventListener("citygrid:language", () => this.render(false));
    this.render(true);
    const later = throttled(() => this.refresh(false), SIT_RELOAD_MS);
    listenLive((msg) => {
      if (msg.kind === "incident" ? Number(msg.id) === this.id : SIT_LIVE_KINDS.has(msg.kind)) later();
    }, later, (text) => { $("#sit-msg").textContent = text ? t("sit_live_lost") : ""; });
  },

  async load() {
    const query = this.radius ? `?radius_m=${encodeURIComponent(this.radius)}` : "";
    $("#sit-status").textContent = t("sit_loading");
    try {
      this.data = (await api.get(`/api/incidents/${this.id}/situation${query}`)).data;
      $("#sit-msg").textContent = "";
      return true;
    } catch (err) {
      $("#sit-msg").textContent = err.status ? err.message : t("network_down");
      $("#sit-status").textContent = "";
      return false;
    }
  },

  async refresh(refit) {
    if (await this.load()) this.render(refit);
  },

  toggle(name, on) {
    this.shown[name] = on;
    if (on) this.layers[name].addTo(this.map); else this.map.removeLayer(this.layers[name]);
  },

  // ------------------------------------------------------------ drawing
  render(refit) {
    const d = this.data;
    this.radius = String(d.radius_m);
    this.renderRadius(d.radius_m);
    this.renderHeader(d.incident);
    this.drawIncident(d, refit);
    for (const name of SIT_SECTIONS) this.drawLayer(name, d[name].items);
    this.renderPopulation(d.grids);
    this.renderLists(d);
    this.loads += 1;
    $("#sit-status").textContent = `${t("sit_updated")} ${fmtTime(d.generated_at, true)}`;
    document.body.dataset.situation = "ready";
    document.body.dataset.loads = String(this.loads);
  },

  renderRadius(radius) {
    const select = $("#sit-controls").radius;
    if (![...select.options].some((o) => Number(o.value) === radius)) {
      select.append(new Option(`${radius} m`, String(radius)));
    }
    select.value = [...select.options].find((o) => Number(o.value) === radius).value;
  },

  renderHeader(inc) {
    $("#sit-incident").innerHTML = html`${inc.drill ? html`<span class="badge sit-drill">${t("sit_drill")}</span> ` : ""}${inc.incident_no} ${inc.title}`.text;
    $("#sit-meta").textContent = `${inc.category} / ${inc.subtype} · ${inc.level}${t("sit_level")} · ${inc.status_name}`;
  },

  drawIncident(d, refit) {
    const inc = d.incident;
    this.incidentLayer.clearLayers();
    const circle = L.geoJSON(d.circle, { style: { color: "#1b5e9f", weight: 1.5, dashArray: "6 4", fill: false },
                                         interactive: false }).addTo(this.incidentLayer);
    L.geoJSON(d.affected, { style: { color: "#c62828", weight: 2, fillColor: "#e53935", fillOpacity: 0.12 },
                            interactive: false }).addTo(this.incidentLayer);
    L.marker([inc.lat, inc.lon], { icon: L.divIcon({ className: "sit-incident", iconSize: [26, 26], iconAnchor: [13, 13],
                                                     html: "<span>!</span>" }) })
      .bindTooltip(escapeText(`${inc.incident_no} ${inc.title}`)).addTo(this.incidentLayer);
    if (refit) {
      const bounds = circle.getBounds();
      this.map.fitBounds(bounds, { padding: [20, 20] });
      const half = Math.max(BASE_HALF_DEG, (bounds.getNorth() - bounds.getSouth()) * 0.75);
      drawBaseMap(this.map, boxAround(L.latLng(inc.lat, inc.lon), half));
    }
  },

  drawLayer(name, items) {
    const layer = this.layers[name];
    layer.clearLayers();
    for (const item of items) {
      const shape = name === "grids" ? this.gridShape(item) : name === "parts" ? this.partMarker(item) : this.marker(name, item);
      shape.bindTooltip(() => escapeText(this.label(name, item)), { sticky: name === "grids" });
      if (name === "cameras") shape.bindPopup(() => this.cameraPopup(item));
      layer.addLayer(shape);
    }
  },

  marker(name, item) {
    const glyph = name === "units" ? ({ vehicle: "车", team: "队", officer: "执" }[item.kind] || SIT_GLYPHS.units) : SIT_GLYPHS[name];
    const state = item.state || (item.online === false ? "offline" : "") || (item.open_alarms && item.open_alarms.length ? "alarm" : "");
    return L.marker([item.lat, item.lon], { keyboard: false, icon: L.divIcon({
      className: `sit-marker sit-${name} ${state ? `sit-state-${state}` : ""}`, iconSize: [22, 22], iconAnchor: [11, 11],
      html: `<span>${glyph}</span>` }) });
  },

  partMarker(item) {
    const broken = item.status !== "完好";
    return L.circleMarker([item.lat, item.lon], { radius: 4, weight: broken ? 2 : 1, color: broken ? "#d00000" : "#fff",
                                                 fillColor: "#6a4c93", fillOpacity: 0.9 });
  },

  gridShape(item) {
    return L.geoJSON(item.geometry, { style: { color: "#e07a00", weight: 1.5, fillColor: "#f4a340",
                                               fillOpacity: 0.1 + 0.35 * item.share } });
  },

  cameraPopup(item) {
    const src = `${item.snapshot_url}?width=320&token=${encodeURIComponent(api.token)}`;
    return html`<div class="sit-camera-pop"><b>${item.name}</b><br>${t("sit_snapshot")}<br>
      <img src="${src}" width="320" alt="${item.name}"></div>`.text;
  },

  // ------------------------------------------------------------ words
  label(name, item) {
    const far = `${Math.round(item.distance_m)} m`;
    switch (name) {
      case "cameras": return `${item.name} · ${far} · ${t(item.sees_point ? "sit_sees_point" : "sit_sees_area")} · ${t(item.online === true ? "sit_online" : item.online === false ? "sit_offline" : "sit_unknown")}`;
      case "resources": return `${item.name} · ${LANG === "en" ? item.type_name_en : item.type_name} × ${item.quantity} · ${t(`sit_status_${item.status}`)} · ${far}${item.contact ? ` · ${item.contact}` : ""}`;
      case "units": return `${item.name} · ${far} · ${this.age(item.age_s)} ${t("sit_ago")}`;
      case "parts": return `${item.name} · ${item.class_name} · ${item.status} · ${far}`;
      case "devices": return `${item.id} · ${LANG === "en" ? item.type_name_en : item.type_name} · ${t(`sit_${item.state}`)}${item.active_alarms.length ? ` (${item.active_alarms.map((a) => a.rule_name).join("、")})` : ""} · ${far}`;
      case "cases": return `${item.case_no} · ${item.class_name || item.class_code} · ${stateName(item.state, item.state_name)} · ${far}`;
      case "grids": return `${item.name || item.code} · ${t("sit_share")} ${(item.share * 100).toFixed(1)}%${item.people_affected != null ? ` · ${item.people_affected} ${t("sit_people")}` : ""}`;
      default: return "";
    }
  },

  age(seconds) {
    if (seconds < 120) return `${seconds}${t("sit_s")}`;
    if (seconds < 7200) return `${Math.round(seconds / 60)}${t("sit_min")}`;
    return `${Math.round(seconds / 3600)}${t("sit_h")}`;
  },

  renderPopulation(grids) {
    const tot = grids.totals;
    $("#sit-population").innerHTML = html`
      <h3>${t("sit_population")}</h3>
      <p class="sit-people"><b id="sit-people-affected">${tot.people_affected ?? "—"}</b> ${t("sit_people")}</p>
      <p class="hint">${t(grids.basis === "radius" ? "sit_basis_radius" : "sit_basis_area")} ·
        ${t("sit_pop_total")} ${tot.population ?? "—"}${tot.grids_without_population ? html` · ${tot.grids_without_population} ${t("sit_pop_unknown")}` : ""}</p>`.text;
  },

  renderLists(d) {
    $("#sit-sections").innerHTML = SIT_SECTIONS.map((name) => {
      const s = d[name];
      const rows = name === "parts" ? this.partClassRows(s) : s.items.map((item) => html`
        <li data-lat="${item.lat ?? ""}" data-lon="${item.lon ?? ""}" data-id="${item.id ?? item.code}">${this.label(name, item)}</li>`);
      return html`<section class="sit-section" data-section="${name}">
        <h3><label><input type="checkbox" data-layer="${name}" ${this.shown[name] === false ? "" : html`checked`}>
          <span class="sit-key sit-${name}"></span> ${t(`sit_${name}`)}</label>
          <span class="sit-count" data-count="${name}">${s.count}</span></h3>
        ${s.truncated ? html`<p class="hint">${t("sit_truncated")} ${s.items.length}</p>` : ""}
        <ol class="sit-list">${s.items.length ? rows : html`<li class="hint">${t("sit_none")}</li>`}</ol>
      </section>`.text;
    }).join("");
    // Grid rows have no point: pan to the grid's own polygon centre instead.
    for (const li of $$('[data-section="grids"] li[data-id]')) {
      const grid = d.grids.items.find((g) => g.code === li.dataset.id);
      if (!grid) continue;
      const c = L.geoJSON(grid.geometry).getBounds().getCenter();
      li.dataset.lat = c.lat; li.dataset.lon = c.lng;
    }
  },

  partClassRows(s) {
    return s.classes.map((c) => html`<li class="sit-class">${c.class_name} (${c.class_code}) × ${c.count} ·
      ${Object.entries(c.by_status).map(([k, v]) => `${k} ${v}`).join("，")}</li>`);
  },
};

startShell(() => sit.start());
