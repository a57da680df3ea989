// The "上报突发事件" form: by hand, or promoting a case / device alarm / camera event / patrol
// alarm (`?promote=KIND:ID`, sent as promote_from; the server fills the title and place from
// the source when they are left empty). The place is a click on the small map or typed lon/lat.
const PROMOTE_KINDS = new Set(["case", "device_alarm", "camera_event", "unit_alarm"]);
const FORM_CENTER = [27.0005, 113.3405];        // where the map opens until the jurisdiction's extent comes

const incForm = {
  map: null, marker: null, circle: null, promote: null, catalog: null,

  clear() {
    if (this.map) { this.map.remove(); this.map = null; }
    this.marker = null; this.circle = null;
  },

  // "case:12" → {kind, id}, or null when it is not one of the kinds an incident comes from.
  parsePromote(text) {
    const m = /^([a-z_]+):(\d+)$/.exec(text || "");
    return m && PROMOTE_KINDS.has(m[1]) ? { kind: m[1], id: Number(m[2]) } : null;
  },

  show(catalog, promote = null) {
    this.clear();
    this.catalog = catalog;
    this.promote = promote;
    const cats = Object.keys(catalog.categories);
    $("#inc-pane").innerHTML = html`<form id="report-form" class="inc-form" novalidate>
      <h2>${t("in_report")}</h2>
      ${promote ? html`<p class="promote-note" data-promote="${promote.kind}:${promote.id}">${t("f_promote_from")}：
        ${t(`src_${promote.kind}`)} ${promote.id}</p>` : ""}
      <label class="wide"><span>${t(promote ? "f_title_promote" : "f_title")}</span>
        <input name="title" maxlength="200" ${promote ? "" : html`required`}></label>
      <label><span>${t("f_category")}</span><select name="category">
        ${cats.map((c) => html`<option value="${c}">${catName(c)}</option>`)}</select></label>
      <label><span>${t("f_subtype")}</span><select name="subtype"></select></label>
      <label><span>${t("f_level")}</span><select name="level">
        ${INC_LEVELS.map((lv, i) => html`<option value="${lv}" ${lv === "Ⅳ" ? html`selected` : ""}>${lv} ${t(`lv_${i + 1}`)}</option>`)}</select></label>
      <fieldset class="wide"><legend>${t(promote ? "f_place_promote" : "f_place")}</legend>
        <div id="form-map" class="form-map" aria-label="map"></div>
        <label><span>${t("f_lon")}</span><input name="lon" inputmode="decimal"></label>
        <label><span>${t("f_lat")}</span><input name="lat" inputmode="decimal"></label>
        <label><span>${t("f_radius")}</span><input name="radius_m" type="number" min="1" max="50000" value="200"></label>
      </fieldset>
      <label class="wide"><span>${t("f_description")}</span><textarea name="description" rows="3" maxlength="4000"></textarea></label>
      <fieldset class="wide"><legend>${t("f_details")}</legend>
        <div id="detail-rows"></div>
        <button type="button" id="add-detail">${t("f_add_detail")}</button></fieldset>
      <label class="check"><input type="checkbox" name="drill"> ${t("f_drill")}</label>
      <label class="check"><input type="checkbox" name="activate" checked> ${t("f_activate")}</label>
      <div class="wide buttons"><button type="submit" class="primary">${t("f_submit")}</button>
        <button type="button" id="form-cancel">${t("f_cancel")}</button></div>
      <p id="form-msg" class="error wide" role="alert"></p>
    </form>`.text;
    const form = $("#report-form");
    this.fillSubtypes(form);
    this.addDetailRow("depth", "");
    form.category.addEventListener("change", () => this.fillSubtypes(form));
    $("#add-detail").addEventListener("click", () => this.addDetailRow("", ""));
    $("#form-cancel").addEventListener("click", () => { location.hash = ""; });
    for (const name of ["lon", "lat", "radius_m"]) form[name].addEventListener("change", () => this.drawPlace(form, false));
    form.addEventListener("submit", (e) => { e.preventDefault(); this.submit(form); });
    this.makeMap(form);
  },

  fillSubtypes(form) {
    const subs = this.catalog.categories[form.category.value] || [];
    form.subtype.innerHTML = subs.map((s) => html`<option value="${s}">${catName(s)}</option>`.text).join("");
  },

  addDetailRow(key, value) {
    const row = document.createElement("div");
    row.className = "detail-row";
    row.innerHTML = html`<input name="detail_key" placeholder="${t("f_key")}" value="${key}" maxlength="50">
      <input name="detail_value" placeholder="${t("f_value")}" value="${value}" maxlength="200">`.text;
    $("#detail-rows").append(row);
  },

  // The map opens on the jurisdiction (/api/extent); the base map follows the view once
  // zoomed in to streets (a whole county of buildings is too much for a small map).
  async makeMap(form) {
    const map = smallMap("form-map", FORM_CENTER, 16);
    this.map = map;
    map.on("click", (e) => {
      form.lon.value = e.latlng.lng.toFixed(6);
      form.lat.value = e.latlng.lat.toFixed(6);
      this.drawPlace(form, false);
    });
    map.on("moveend", () => {
      if (this.map === map && map.getZoom() >= 14) drawBaseMap(map, boxAround(map.getCenter(), BASE_HALF_DEG * 2));
    });
    try {
      const b = (await api.get("/api/extent")).data.bbox;
      if (b && this.map === map) map.fitBounds([[b[1], b[0]], [b[3], b[2]]]);
    } catch (err) {
      // offline: the map stays where it opened, and lon/lat can still be typed
    }
    if (this.map === map) drawBaseMap(map, boxAround(map.getCenter(), BASE_HALF_DEG * 2));
  },

  // The marker and the affected circle where the form says.
  drawPlace(form, pan) {
    const lon = Number(form.lon.value), lat = Number(form.lat.value);
    if (!form.lon.value || !form.lat.value || !Number.isFinite(lon) || !Number.isFinite(lat)) return;
    const at = L.latLng(lat, lon);
    if (!this.marker) this.marker = L.marker(at).addTo(this.map); else this.marker.setLatLng(at);
    const radius = Number(form.radius_m.value);
    if (this.circle) { this.map.removeLayer(this.circle); this.circle = null; }
    if (radius > 0) this.circle = L.circle(at, { radius, color: "#c62828", weight: 1.5, fillOpacity: 0.1 }).addTo(this.map);
    if (pan) this.map.panTo(at);
  },

  planName(planId) {
    const plan = incDetail.plans.find((p) => p.id === planId);
    return plan ? plan.name : planId;
  },

  details(form) {
    const out = {};
    $$(".detail-row", form).forEach((row) => {
      const key = row.querySelector("[name=detail_key]").value.trim();
      const value = row.querySelector("[name=detail_value]").value.trim();
      if (!key) return;
      const n = Number(value);
      out[key] = value !== "" && Number.isFinite(n) ? n : value;
    });
    return out;
  },

  body(form) {
    const num = (v) => (v.trim() === "" ? null : Number(v));
    const body = {
      title: form.title.value.trim() || null, category: form.category.value, subtype: form.subtype.value,
      level: form.level.value, lon: num(form.lon.value), lat: num(form.lat.value), radius_m: num(form.radius_m.value),
      description: form.description.value, details: this.details(form), drill: form.drill.checked,
      activate: form.activate.checked,
    };
    if (this.promote) body.promote_from = this.promote;
    return body;
  },

  // What the report started: one plan, a choice for the commander (several plans apply), or none.
  activationSaid(act) {
    if (act && act.plan_id) return `${t("f_activated")} ${this.planName(act.plan_id)}（${act.tasks} ${t("f_tasks")}）`;
    if (act && act.choices?.length) return `${t("f_choose_plan")}${act.choices.map((c) => `《${c.name}》`).join("、")}`;
    return t("f_not_activated");
  },

  async submit(form) {
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    incSay("form-msg", "");
    try {
      const made = await api.json("POST", "/api/incidents", this.body(form));
      const said = `${t("f_reported")} ${made.incident_no}；` + this.activationSaid(made.activation);
      incPage.flash = said;
      if (this.promote) { history.replaceState(null, "", location.pathname); incPage.promote = null; }
      location.hash = `#${made.id}`;
      incList.load();
    } catch (err) {
      incSay("form-msg", explainError(err));
    } finally {
      button.disabled = false;
    }
  },
};
