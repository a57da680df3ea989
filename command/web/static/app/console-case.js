// One case in the console: facts and deadlines, a map, photos, duplicates (merge), the
// timeline, reporters, extensions, and exactly the actions the server allows now.
// Mirror of command/auth.py incident.report: who is offered 升级为突发事件 (the server decides).
const CASE_PROMOTE_ROLES = new Set(["admin", "leader", "commander", "shift_lead", "operator", "dispatcher"]);
Object.assign(STRINGS.zh, { promote_incident: "升级为突发事件" });
Object.assign(STRINGS.en, { promote_incident: "Promote to an incident" });
const casePage = {
  map: null, departments: [], current: null,

  clear() {
    if (this.map) { this.map.remove(); this.map = null; }
    this.current = null;
  },

  async show(id, message = "") {
    const pane = $("#detail-pane");
    let c, duplicates = [];
    try {
      c = (await api.get(`/api/cases/${id}`)).data;
      if (!["closed", "void", "not_filed"].includes(c.state)) {
        duplicates = (await api.get(`/api/cases/${id}/duplicates`)).data;
      }
    } catch (err) {
      this.clear();
      pane.innerHTML = html`<p class="notice">${message ? html`${message}<br>` : ""}${explainError(err)}</p>`;
      return;
    }
    this.clear();
    this.current = c;
    caseList.select(c.id);
    const canMerge = c.allowed_actions.some((a) => a.action === "merge");
    pane.innerHTML = html`<div class="case-head" data-case="${c.id}" data-version="${c.version}">
        <h2>${t("case")} ${c.case_no}</h2>${stateBadge(c)} ${dueBadge(c.due)}
        <span class="spacer"></span>${CASE_PROMOTE_ROLES.has(api.user.role) ? html`<a id="case-promote" class="promote"
          href="/incidents?promote=case:${c.id}">${t("promote_incident")}</a>` : ""}
        <button type="button" id="case-reload">${t("refresh")}</button></div>
      <p id="case-msg" class="ok" role="status">${message}</p>
      <div class="case-top">
        <dl class="facts">
          <dt>${t("klass")}</dt><dd>${t(`kind_${c.kind}`)} · ${c.class_code} ${c.class_name}</dd>
          ${c.part_id ? html`<dt>${t("part")}</dt><dd>${c.part_id}</dd>` : ""}
          <dt>${t("description")}</dt><dd>${c.description || "—"}</dd>
          ${c.address ? html`<dt>${t("address")}</dt><dd>${c.address}</dd>` : ""}
          <dt>${t("grid")}</dt><dd>${c.grid_name} ${c.grid_code}</dd>
          <dt>${t("source")}</dt><dd>${sourceName(c.source)} · ${fmtTime(c.created_at)}</dd>
          <dt>${t("department")}</dt><dd>${c.dept_name || "—"}</dd>
          <dt>${t("suggested")}</dt><dd>${c.suggested_dept_name || "—"}</dd>
          ${c.assignee_name ? html`<dt>${t("assignee")}</dt><dd>${c.assignee_name}</dd>` : ""}
          ${deadlines(c)}
          ${c.rework_count || c.return_count ? html`<dt>${t("rework_return")}</dt><dd>${c.rework_count} / ${c.return_count}</dd>` : ""}
          ${c.duplicate_of ? html`<dt>${t("merged_into")}</dt><dd><a href="#case/${c.duplicate_of}">#${c.duplicate_of}</a></dd>` : ""}
        </dl>
        <div id="case-map" class="case-map" aria-label="map"></div>
      </div>
      <section><h3>${t("actions")}</h3><div id="case-actions"></div></section>
      <section><h3>${t("photos")}</h3><div id="case-photos" class="photos"></div></section>
      <section id="case-cameras" hidden><h3>${t("cameras_seeing")}</h3><div class="photos"></div></section>
      ${duplicates.length ? html`<section id="case-duplicates"><h3>${t("duplicates")}</h3><ul class="plain">${duplicates.map((d) =>
        html`<li><a href="#case/${d.id}">${d.case_no}</a> · ${stateName(d.state)} · ${d.distance_m} m · ${fmtTime(d.created_at)}
        ${canMerge ? html`<button type="button" class="link merge-to" data-target="${d.id}">${t("merge_to_this")}</button>` : ""}</li>`)}</ul></section>` : ""}
      <section><h3>${t("timeline")}</h3>${timeline(c)}</section>
      <section><h3>${t("reporters")}</h3>${reporters(c)}</section>
      <section><h3>${t("extensions")}</h3>${extensions(c)}</section>`;
    $("#case-reload").addEventListener("click", () => this.show(c.id));
    renderActions($("#case-actions"), c, {
      departments: this.departments, duplicates,
      onDone: async (result, a) => {
        await Promise.all([this.show(c.id, `${actionName(a.action, a.name)} ✓`), caseList.load()]);
      },
    });
    $$("#case-duplicates button.merge-to").forEach((b) => b.addEventListener("click", () => {
      $("#case-actions button[data-action=merge]").click();
      $("#case-actions select[name=merge_into]").value = b.dataset.target;
    }));
    renderPhotos($("#case-photos"), c);
    this.showCameras(c);
    this.drawMap(c);
    pane.scrollTop = 0;
  },

  // The cameras that can see the case's place (within range, inside the sector), nearest
  // first, each with its latest picture: a look before anyone is sent.
  async showCameras(c) {
    let cams;
    try {
      cams = (await api.get(`/api/cameras/seeing?lon=${c.lon}&lat=${c.lat}&limit=4`)).data;
    } catch (_) {
      return;                                           // a role without camera.read: no section
    }
    const box = $("#case-cameras");
    if (!box || !cams.length) return;
    const token = encodeURIComponent(api.token);
    box.querySelector("div").innerHTML = html`${cams.map((cam) => html`<figure class="case-camera" data-camera="${cam.id}">
      <img alt="${cam.name}" width="320" src="/api/cameras/${cam.id}/snapshot.jpg?width=320&token=${token}">
      <figcaption>${cam.name} · ${Math.round(cam.distance_m)} m</figcaption></figure>`)}`;
    box.hidden = false;
  },

  drawMap(c) {
    const at = L.latLng(c.lat, c.lon);
    this.map = smallMap("case-map", at, 17);
    drawBaseMap(this.map, boxAround(at, BASE_HALF_DEG));
    L.marker(at, { title: c.case_no }).addTo(this.map);
  },
};
