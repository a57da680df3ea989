// The device page (/devices, 物联感知设备): the devices this user may see in a table with
// filters (applied by the server, GET /api/devices?type=&area=&state=), on our own base map as
// markers coloured by state (active alarm red, offline grey, normal green) — the same devices
// as the table — and the one picked in the detail pane (#device/<id>). The live bus keeps
// alarm counts, the picked device's alarms and its command log current.
const DEVICE_PAGE = 500;

// A device's look, and the `state` filter's values: an active alarm outranks being offline;
// never heard from counts as offline (the server's DEVICE_STATES in device_routes.py say the same).
function deviceState(d) {
  if (d.active_alarms > 0) return "alarm";
  if (d.online === false || !d.seen_at) return "offline";
  return "normal";
}

function onlineText(d) {
  if (d.online === true) return t("dv_state_online");
  if (d.online === false) return t("dv_state_offline");
  return d.seen_at ? t("dv_state_unknown") : t("dv_never");
}

function deviceHash(id) { return `#device/${encodeURIComponent(id)}`; }

const deviceList = {
  rows: [], next: null, selected: null, areas: [], map: null, layer: null, markers: new Map(), loads: 0, asked: 0,

  async init(areas) {
    this.areas = areas;
    this.fillFilters();
    const form = $("#device-filters");
    for (const select of [form.type, form.area, form.state]) select.addEventListener("change", () => this.restart());
    $("#device-refresh").addEventListener("click", () => this.load());
    $("#device-more").addEventListener("click", () => this.load(true));
    await this.drawMap();
  },

  fillFilters() {
    const form = $("#device-filters");
    const keep = Object.fromEntries(new FormData(form));
    form.type.innerHTML = html`<option value="">${t("dv_all_types")}</option>${[...deviceTypes.byCode.keys()].map((code) =>
      html`<option value="${code}">${deviceTypes.name(code)}</option>`)}`;
    form.area.innerHTML = html`<option value="">${t("all_areas")}</option>${this.areas.map((county) => county.streets.map((s) =>
      html`<option value="${s.code}">${s.name}</option>${s.communities.map((c) =>
        html`<option value="${c.code}">　${c.name}</option>`)}`))}`;
    form.state.innerHTML = html`<option value="">${t("dv_any_state")}</option>
      <option value="alarm">${t("dv_with_alarms")}</option><option value="offline">${t("dv_offline")}</option>
      <option value="normal">${t("dv_normal")}</option>`;
    for (const [k, v] of Object.entries(keep)) form[k].value = v;
  },

  async drawMap() {
    const { data: ext } = await api.get("/api/extent");
    const b = ext.bbox || [113.33, 26.99, 113.36, 27.01];
    this.map = smallMap("device-map", L.latLng((b[1] + b[3]) / 2, (b[0] + b[2]) / 2), 15);
    this.map.fitBounds([[b[1], b[0]], [b[3], b[2]]], { animate: false });
    this.layer = L.layerGroup().addTo(this.map);
    drawBaseMap(this.map, b);
  },

  // A filter changed: the list starts again from the server's first page.
  restart() {
    this.rows = [];
    this.next = null;
    return this.load();
  },

  // Reload what is shown (a refresh keeps the pages already opened, up to the API's limit).
  // Only the answer to the latest request is shown, whatever order the answers come in.
  async load(append = false) {
    const form = $("#device-filters");
    const params = new URLSearchParams();
    for (const name of ["type", "area", "state"]) if (form[name].value) params.set(name, form[name].value);
    const asked = ++this.asked;
    const size = append ? DEVICE_PAGE : Math.min(5000, Math.max(DEVICE_PAGE, this.rows.length));
    params.set("limit", String(size));
    if (append && this.next) params.set("after", this.next);
    try {
      const { data } = await api.get(`/api/devices?${params}`);
      if (asked !== this.asked) return;
      this.rows = append ? [...this.rows, ...data] : data;
      this.next = data.length === size ? data[data.length - 1].id : null;
      this.loads++;
    } catch (err) {
      if (asked === this.asked) $("#device-count").textContent = explainError(err);
      return;
    }
    this.render();
  },

  render() {
    const rows = this.rows;
    $("#device-table tbody").innerHTML = html`${rows.map((d) => html`<tr data-device="${d.id}"
        class="${d.id === this.selected ? "selected" : ""}" tabindex="0">
      <td class="dv-id"><span class="dv-dot dev-${deviceState(d)}"></span>${d.id}</td>
      <td>${deviceTypes.name(d.type)}</td><td>${d.grid_code || "—"}</td>
      <td class="dv-online">${onlineText(d)}</td><td>${fmtTime(d.last_reading_at) || "—"}</td>
      <td class="dv-latest">${valuesLine(d.type, d.latest) || "—"}</td>
      <td class="dv-alarm-count">${d.active_alarms ? html`<span class="count">${d.active_alarms}</span>` : "0"}</td></tr>`)}`;
    $$("#device-table tbody tr").forEach((tr) => {
      const open = () => { location.hash = deviceHash(tr.dataset.device); };
      tr.addEventListener("click", open);
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
    });
    let count = rows.length ? `${rows.length} ${t("dv_devices")}` : t("dv_none");
    if (this.next) count += ` · ${t("dv_limited").replace("{n}", this.rows.length)}`;
    $("#device-count").textContent = count;
    $("#device-more").hidden = !this.next;
    this.drawMarkers(rows);
  },

  drawMarkers(rows) {
    this.layer.clearLayers();
    this.markers.clear();
    for (const d of rows) {
      if (d.lon == null || d.lat == null) continue;
      const state = deviceState(d);
      const icon = L.divIcon({
        className: `device-marker dev-${state}${d.id === this.selected ? " selected" : ""}`,
        iconSize: [16, 16], iconAnchor: [8, 8], html: html`<span data-device="${d.id}"></span>`.text });
      const marker = L.marker([d.lat, d.lon], { icon, keyboard: false, zIndexOffset: state === "alarm" ? 1000 : 0 })
        .bindTooltip(() => html`<b>${d.id}</b> · ${deviceTypes.name(d.type)}<br>${valuesLine(d.type, d.latest) || "—"}
          ${d.active_alarms ? html`<br><span class="dv-tip-alarm">${t("dv_alarms")}: ${d.active_alarms}</span>` : ""}`.text,
          { direction: "top", offset: [0, -8] })
        .on("click", () => { location.hash = deviceHash(d.id); })
        .addTo(this.layer);
      this.markers.set(d.id, marker);
    }
  },

  select(id) {
    this.selected = id;
    $$("#device-table tbody tr").forEach((tr) => tr.classList.toggle("selected", tr.dataset.device === id));
    for (const [key, marker] of this.markers) {
      const el = marker.getElement();
      if (el) el.classList.toggle("selected", key === id);
    }
    const marker = this.markers.get(id);
    if (marker && !this.map.getBounds().contains(marker.getLatLng())) this.map.panTo(marker.getLatLng(), { animate: false });
  },

  // A device's fresh row (after its detail loaded): keeps the table and its marker current;
  // one no longer in the chosen state leaves both, as the server would leave it out.
  update(d) {
    const i = this.rows.findIndex((r) => r.id === d.id);
    if (i < 0) return;
    const want = $("#device-filters").state.value;
    if (want && deviceState(d) !== want) this.rows.splice(i, 1);
    else this.rows[i] = d;
    this.render();
  },
};

async function routeDevice() {
  const match = location.hash.match(/^#device\/(.+)$/);
  if (match) return deviceDetail.show(decodeURIComponent(match[1]));
  deviceDetail.clear();
  deviceList.select(null);
}

startShell(async () => {
  let areas;
  try {
    [, areas] = await Promise.all([deviceTypes.load(), api.get("/api/areas")]);
  } catch (err) {                              // a role that may not read devices
    $("#app").innerHTML = html`<p class="notice">${explainError(err)}</p>`;
    return;
  }
  await deviceList.init(areas.data);
  await deviceList.load();
  window.addEventListener("hashchange", routeDevice);
  document.addEventListener("citygrid:language", () => {
    deviceList.fillFilters();
    deviceList.render();
    deviceDetail.render();
  });
  const say = (text) => { $("#device-live-msg").textContent = text; };
  const reloadList = throttled(() => deviceList.load());
  const reloadAlarms = throttled(() => deviceDetail.refresh());
  const reloadCommands = throttled(() => deviceDetail.loadCommands());
  listenLive((msg) => {
    // Roles that see only some devices get the bare {kind, id}: then the picked device may be concerned.
    const mine = !msg.device_id || (deviceDetail.current && msg.device_id === deviceDetail.current.id);
    if (msg.kind === "device_alarm") {
      reloadList();
      if (mine) reloadAlarms();
    } else if (msg.kind === "device_command" && mine) {
      reloadCommands();
    }
  }, () => { deviceList.load(); deviceDetail.refresh(); }, say);
  await routeDevice();
  document.body.dataset.ready = "true";      // for browser tests and screenshots
});
