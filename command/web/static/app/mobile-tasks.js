// 我的任务 on the phone: the 核实 (verifying) and 核查 (checking) tasks assigned to me, each
// with its photos, a map from where I stand to the case (straight line and distance: no
// external navigation on an isolated network), and the actions the server allows.
const tasks = {
  list: [], map: null, current: null,

  async load() {
    const status = $("#task-status");
    try {
      const { data } = await api.get("/api/cases?mine=true&state=verifying&state=checking&limit=200");
      this.list = data.cases;
      // Clear only our own earlier failure: the ✓ of the action just taken stays readable.
      if (status.dataset.kind === "error") { status.textContent = ""; delete status.dataset.kind; }
    } catch (err) {
      status.textContent = explainError(err);
      status.dataset.kind = "error";
    }
    this.renderList();
  },

  renderList() {
    $("#task-count").textContent = this.list.length ? String(this.list.length) : "";
    const ul = $("#task-list");
    if (!this.list.length) { ul.innerHTML = html`<li class="hint">${t("no_tasks")}</li>`; return; }
    ul.innerHTML = html`${this.list.map((c) => html`<li><button type="button" class="card" data-case="${c.id}">
      <span class="task-kind">${t(c.state === "checking" ? "task_check" : "task_verify")}</span>
      <b>${c.class_name}</b> ${dueBadge(c.due)}<br>
      <span class="hint">${c.case_no} · ${t("deadline")} ${fmtTime(currentDeadline(c))}</span></button></li>`)}`;
    $$("#task-list button.card").forEach((b) => b.addEventListener("click", () => this.open(Number(b.dataset.case))));
  },

  close() {
    if (this.map) { this.map.remove(); this.map = null; }
    this.current = null;
    $("#task-detail").hidden = true;
    $("#task-list").hidden = false;
  },

  async open(id) {
    let c;
    try {
      c = (await api.get(`/api/cases/${id}`)).data;
    } catch (err) {
      $("#task-status").textContent = explainError(err);
      $("#task-status").dataset.kind = "error";
      return;
    }
    if (this.map) { this.map.remove(); this.map = null; }
    this.current = c;
    const box = $("#task-detail");
    $("#task-list").hidden = true;
    box.hidden = false;
    box.innerHTML = html`<button type="button" class="link" id="task-back">← ${t("back")}</button>
      <h3>${t(c.state === "checking" ? "task_check" : "task_verify")} · ${c.class_name} ${dueBadge(c.due)}</h3>
      <p class="hint">${c.case_no} · ${stateBadge(c)} · ${c.grid_name} · ${t("deadline")} ${fmtTime(currentDeadline(c))}</p>
      ${c.description ? html`<p>${c.description}</p>` : ""}${c.address ? html`<p class="hint">${c.address}</p>` : ""}
      <div id="task-map" class="m-map"></div>
      <p id="task-distance" class="hint"></p>
      <h4>${t("photos_before")}</h4><div id="task-before" class="photos"></div>
      ${c.photos.some((p) => p.kind === "after") ? html`<h4>${t("photos_after")}</h4><div id="task-after" class="photos"></div>` : ""}
      <h4>${t("actions")}</h4><div id="task-actions"></div>`;
    $("#task-back").addEventListener("click", () => this.close());
    renderPhotos($("#task-before"), c, BEFORE_KINDS);
    if ($("#task-after")) renderPhotos($("#task-after"), c, ["after"]);
    renderActions($("#task-actions"), c, { onDone: async (result, a) => {
      this.close();
      const status = $("#task-status");
      status.textContent = `${actionName(a.action, a.name)} ✓ ${c.case_no}`;
      delete status.dataset.kind;
      await this.load();
    } });
    this.drawMap(c);
  },

  drawMap(c) {
    const target = L.latLng(c.lat, c.lon);
    this.map = smallMap("task-map", target, 17);
    drawBaseMap(this.map, boxAround(target, BASE_HALF_DEG));
    L.marker(target, { title: c.case_no }).addTo(this.map);
    const route = L.layerGroup().addTo(this.map);
    const showRoute = (here) => {
      if (!this.map) return;
      route.clearLayers();
      L.circleMarker(here, { radius: 7, color: "#fff", weight: 2, fillColor: "#1b5e9f", fillOpacity: 1 })
        .bindTooltip(t("you_are_here")).addTo(route);
      L.polyline([here, target], { color: "#1b5e9f", dashArray: "6 6", weight: 3 }).addTo(route);
      this.map.fitBounds(L.latLngBounds([here, target]).pad(0.3), { maxZoom: 18 });
      const m = distanceM(here, target);
      $("#task-distance").textContent = `${t("straight_line")} ${m < 1000 ? `${Math.round(m)} m` : `${(m / 1000).toFixed(1)} km`}`
        + ` · ${t("heading")} ${compass(here, target)}`;
    };
    if (report.fix) showRoute(report.fix.latlng);
    if (navigator.geolocation) {
      navigator.geolocation.getCurrentPosition((p) => showRoute(L.latLng(p.coords.latitude, p.coords.longitude)),
        () => { if (!report.fix) $("#task-distance").textContent = t("position_unknown"); },
        { enableHighAccuracy: true, timeout: 15000, maximumAge: 10000 });
    }
  },
};

// Which way to walk, as one of eight compass points.
function compass(from, to) {
  const dy = to.lat - from.lat, dx = (to.lng - from.lng) * Math.cos(from.lat * Math.PI / 180);
  const deg = (Math.atan2(dx, dy) * 180 / Math.PI + 360) % 360;
  return t(`compass_${Math.round(deg / 45) % 8}`);
}
