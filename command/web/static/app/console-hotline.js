// 12345 hotline intake (受理员/值班长): the caller (or anonymous), the class, a point picked on
// the map, the description. The server marks the case source=hotline and sends it to the
// grid's inspector for 核实.
const hotline = {
  map: null, marker: null, picker: null, catalog: null, clientRef: null,

  clear() {
    if (this.map) { this.map.remove(); this.map = null; }
  },

  async show(catalog) {
    this.catalog = catalog;
    this.clientRef = newClientRef();      // one per form: a double click lands once
    this.marker = null;
    $("#detail-pane").innerHTML = html`<h2>${t("hotline")}</h2>
      <form id="hotline-form" class="stack">
        <fieldset><legend>${t("caller")}</legend>
          <div class="row"><label>${t("caller_name")} <input name="reporter_name" maxlength="50"></label>
          <label>${t("caller_phone")} <input name="reporter_phone" inputmode="tel" pattern="[0-9+\\- ]{3,20}"></label>
          <label class="check"><input type="checkbox" name="anonymous"> ${t("anonymous")}</label></div>
        </fieldset>
        <div class="kind" role="radiogroup">
          <label><input type="radio" name="kind" value="event" checked> ${t("kind_event")}</label>
          <label><input type="radio" name="kind" value="part"> ${t("kind_part")}</label></div>
        <div class="row"><label>${t("big_class")} <select class="big"></select></label>
          <label>${t("small_class")} <select name="class_code" required></select></label></div>
        <div id="hotline-map" class="case-map" aria-label="map"></div>
        <p id="hotline-point" class="hint">${t("pick_point")}</p>
        <label>${t("address")} <input name="address" maxlength="200"></label>
        <label>${t("description")} <textarea name="description" rows="3" maxlength="2000" required></textarea></label>
        <label>${t("photos_optional")} <input name="photos" type="file" accept="image/*" multiple></label>
        <div class="row"><button type="submit" class="primary">${t("submit_hotline")}</button></div>
        <p class="error" role="alert"></p>
      </form><div id="hotline-result"></div>`;
    const form = $("#hotline-form");
    this.picker = new ClassPicker(form, catalog);
    form.anonymous.addEventListener("change", () => {
      for (const name of ["reporter_name", "reporter_phone"]) {
        form[name].disabled = form.anonymous.checked;
        if (form.anonymous.checked) form[name].value = "";
      }
    });
    form.addEventListener("submit", (e) => { e.preventDefault(); this.submit(form); });
    await this.drawMap();
  },

  async drawMap() {
    let box = null;
    try { box = (await api.get("/api/extent")).data.bbox; } catch (err) { /* drawn without a base map */ }
    box = box || [113.33, 26.99, 113.36, 27.01];
    this.map = smallMap("hotline-map", L.latLng((box[1] + box[3]) / 2, (box[0] + box[2]) / 2), 15);
    this.map.fitBounds([[box[1], box[0]], [box[3], box[2]]]);
    drawBaseMap(this.map, box);
    this.map.on("click", (e) => this.pick(e.latlng));
  },

  // A point: show it, and say which grid and community it falls in (or that it is outside).
  async pick(latlng) {
    if (!this.marker) {
      this.marker = L.marker(latlng, { draggable: true }).addTo(this.map);
      this.marker.on("dragend", () => this.pick(this.marker.getLatLng()));
    } else {
      this.marker.setLatLng(latlng);
    }
    const note = $("#hotline-point");
    note.textContent = `${latlng.lat.toFixed(6)}, ${latlng.lng.toFixed(6)}`;
    try {
      const { data } = await api.get(`/api/geocode?lon=${latlng.lng.toFixed(7)}&lat=${latlng.lat.toFixed(7)}&nearest=0`);
      note.textContent += ` · ${data.street_name} ${data.community_name} ${data.grid_name}`;
    } catch (err) {
      note.textContent += ` · ${explainError(err)}`;
    }
  },

  async submit(form) {
    const error = form.querySelector(".error");
    error.textContent = "";
    if (!form.class_code.value) { error.textContent = t("choose_class_first"); return; }
    if (!this.marker) { error.textContent = t("pick_point"); return; }
    if (!form.description.value.trim()) { error.textContent = t("description_needed"); return; }
    const ll = this.marker.getLatLng();
    const body = new FormData();
    const fields = { kind: this.picker.kind, class_code: form.class_code.value, lon: ll.lng.toFixed(7),
                     lat: ll.lat.toFixed(7), description: form.description.value.trim(), address: form.address.value.trim(),
                     reporter_name: form.reporter_name.value.trim(), reporter_phone: form.reporter_phone.value.trim(),
                     client_ref: this.clientRef };
    for (const [k, v] of Object.entries(fields)) if (v) body.append(k, v);
    for (const f of form.photos.files) body.append("photos", f, f.name);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const r = await api.post("/api/cases", body);
      this.clientRef = newClientRef();
      form.reset();
      this.picker.fillBig();
      $("#hotline-result").innerHTML = html`<p class="ok">${t("hotline_done")}
        <a href="#case/${r.case.id}">${r.case.case_no}</a> (${stateName(r.case.state, r.case.state_name)})</p>
        ${r.duplicates.length ? html`<p class="notice">${t("maybe_duplicate")}: ${r.duplicates.map((d) =>
          html`<a href="#case/${d.id}">${d.case_no}</a> (${d.distance_m} m) `)}</p>` : ""}`;
      caseList.load();
    } catch (err) {
      error.textContent = explainError(err);
    } finally {
      button.disabled = false;
    }
  },
};
