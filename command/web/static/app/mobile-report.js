// 上报 on the phone: where (GPS with its accuracy, a draggable marker, nearby parts), what
// (事件/部件 → 大类 → 小类), photos, description; sent through the outbox.
const NEAR_HALF_DEG = 0.0015;       // ~150 m each way: "nearby" parts
const MAX_PHOTOS = 9;

const report = {
  user: null, picker: null, map: null, marker: null, accuracyCircle: null, partsLayer: null,
  fix: null, manual: false, part: null, files: [], baseCentre: null, nearby: [],

  async start(user, catalog) {
    this.user = user;
    const form = $("#report-form");
    this.picker = new ClassPicker(form, catalog);
    form.addEventListener("class-change", () => this.keepPartIfClassMatches());
    form.class_code.addEventListener("change", () => this.keepPartIfClassMatches());
    $("#photos").addEventListener("change", (e) => this.addFiles([...e.target.files]));
    $("#locate").addEventListener("click", () => this.locate());
    form.addEventListener("submit", (e) => { e.preventDefault(); this.send(); });

    // First view: the jurisdiction's middle, until the phone says where we are.
    let centre = L.latLng(27.0, 113.34);
    try {
      const b = (await api.get("/api/extent")).data.bbox;
      if (b) centre = L.latLng((b[1] + b[3]) / 2, (b[0] + b[2]) / 2);
    } catch (err) { /* offline: keep the default */ }
    this.map = smallMap("report-map", centre, 17);
    this.partsLayer = L.layerGroup().addTo(this.map);
    this.marker = L.marker(centre, { draggable: true, autoPan: true, title: t("drag_marker") }).addTo(this.map);
    this.marker.on("dragend", () => { this.manual = true; this.part = null; this.showPart(); this.moved(); });
    this.map.on("click", (e) => { this.marker.setLatLng(e.latlng); this.manual = true; this.moved(); });
    this.showPosition();
    this.locate();
  },

  locate() {
    if (!navigator.geolocation) { $("#position").textContent = t("no_geolocation"); return; }
    $("#position").textContent = t("locating");
    navigator.geolocation.getCurrentPosition((p) => {
      this.fix = { latlng: L.latLng(p.coords.latitude, p.coords.longitude), accuracy: p.coords.accuracy };
      this.manual = false;
      this.marker.setLatLng(this.fix.latlng);
      this.map.setView(this.fix.latlng, 18);
      if (this.accuracyCircle) this.accuracyCircle.remove();
      this.accuracyCircle = L.circle(this.fix.latlng, { radius: this.fix.accuracy, weight: 1, color: "#1b5e9f",
                                                         fillOpacity: 0.08, interactive: false }).addTo(this.map);
      this.moved();
    }, (err) => {
      $("#position").textContent = `${t("geo_failed")}${err.message}`;
    }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 10000 });
  },

  showPosition() {
    const ll = this.marker.getLatLng();
    const where = `${ll.lat.toFixed(6)}, ${ll.lng.toFixed(6)}`;
    let text;
    if (!this.fix) text = `${t("position_unknown")} · ${where}`;
    else if (this.manual) text = `${t("position_adjusted")} (${t("gps_accuracy")} ±${Math.round(this.fix.accuracy)} m) · ${where}`;
    else text = `${t("gps_accuracy")} ±${Math.round(this.fix.accuracy)} m · ${where}`;
    $("#position").textContent = text;
  },

  // The marker moved (GPS, drag, tap): refresh the text, the nearby parts and, when far
  // from what is loaded, the base map.
  async moved() {
    this.showPosition();
    const ll = this.marker.getLatLng();
    if (!this.baseCentre || distanceM(this.baseCentre, ll) > 300) {
      this.baseCentre = ll;
      drawBaseMap(this.map, boxAround(ll, BASE_HALF_DEG));
    }
    await this.loadNearby(ll);
  },

  async loadNearby(ll) {
    let features = [];
    try {
      features = (await api.get(`/api/parts?limit=100&bbox=${boxParam(boxAround(ll, NEAR_HALF_DEG))}`)).data.features;
    } catch (err) { /* offline: no part list, the class pickers still work */ }
    this.nearby = features.map((f) => ({ ...f.properties,
      latlng: L.latLng(f.geometry.coordinates[1], f.geometry.coordinates[0]) }))
      .map((p) => ({ ...p, distance: distanceM(ll, p.latlng) }))
      .sort((a, b) => a.distance - b.distance);
    this.partsLayer.clearLayers();
    for (const p of this.nearby) {
      L.circleMarker(p.latlng, { radius: 8, weight: 2, color: "#fff", fillColor: "#e6761b", fillOpacity: 0.9 })
        .bindTooltip(escapeText(p.name))         // Leaflet reads a tooltip string as HTML
        .on("click", () => this.choosePart(p)).addTo(this.partsLayer);
    }
    this.renderNearby();
  },

  renderNearby() {
    const list = this.nearby.slice(0, 5);
    $("#nearby").innerHTML = list.length ? html`<p class="hint">${t("nearby_parts")}</p><div class="chips">${list.map((p) =>
      html`<button type="button" class="chip" data-part="${p.id}">${p.name} · ${Math.round(p.distance)} m</button>`)}</div>` : "";
    $$("#nearby button.chip").forEach((b) => b.addEventListener("click", () =>
      this.choosePart(this.nearby.find((p) => p.id === b.dataset.part))));
  },

  // A tapped part: the report is about it, at its surveyed location.
  choosePart(p) {
    this.picker.choose("part", p.class_code);
    this.part = p;
    this.marker.setLatLng(p.latlng);
    this.manual = true;
    this.showPart();
    this.showPosition();
  },

  showPart() {
    const box = $("#chosen-part");
    box.hidden = !this.part;
    if (!this.part) return;
    box.innerHTML = html`${t("chosen_part")}: <b>${this.part.name}</b> ${this.part.id}
      <button type="button" class="link" id="clear-part">${t("clear")}</button>`;
    $("#clear-part").addEventListener("click", () => { this.part = null; this.showPart(); });
  },

  keepPartIfClassMatches() {
    if (this.part && (this.picker.kind !== "part" || $("#report-form").class_code.value !== this.part.class_code)) {
      this.part = null;
      this.showPart();
    }
  },

  addFiles(files) {
    this.files = [...this.files, ...files.filter((f) => f.type.startsWith("image/"))].slice(0, MAX_PHOTOS);
    $("#photos").value = "";             // the same photo may be picked again after removing it
    this.renderPreviews();
  },

  renderPreviews() {
    const box = $("#previews");
    box.querySelectorAll("img").forEach((img) => URL.revokeObjectURL(img.src));
    box.innerHTML = "";
    this.files.forEach((f, i) => {
      const item = document.createElement("div");
      item.className = "preview";
      const img = document.createElement("img");
      img.src = URL.createObjectURL(f);
      img.alt = f.name;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "×";
      remove.title = t("remove");
      remove.addEventListener("click", () => { this.files.splice(i, 1); this.renderPreviews(); });
      item.append(img, remove);
      box.appendChild(item);
    });
  },

  async send() {
    const form = $("#report-form");
    const status = $("#report-status");
    status.className = "";
    if (!form.class_code.value) { status.className = "error"; status.textContent = t("choose_class_first"); return; }
    // Without a GPS fix the marker only sits at the town centre: make the inspector place it.
    if (!this.fix && !this.manual) { status.className = "error"; status.textContent = t("place_marker_first"); return; }
    const ll = this.marker.getLatLng();
    const fields = { kind: this.picker.kind, class_code: form.class_code.value, lon: ll.lng.toFixed(7),
                     lat: ll.lat.toFixed(7), description: form.description.value.trim(),
                     part_id: this.part ? this.part.id : "" };
    $("#send").disabled = true;
    try {
      const item = await outbox.add(this.user.username, fields, this.files);
      this.reset();
      status.textContent = t("sending");
      await outbox.flush(this.user.username);
      const left = (await outbox.list(this.user.username)).find((i) => i.client_ref === item.client_ref);
      if (left && left.status === "pending") status.textContent = t("queued_offline");
    } catch (err) {
      status.className = "error";
      status.textContent = err.message;
    } finally {
      $("#send").disabled = false;
    }
  },

  reset() {
    const form = $("#report-form");
    form.description.value = "";
    this.files = [];
    this.renderPreviews();
    this.part = null;
    this.showPart();
    form.querySelector("input[name=kind][value=event]").checked = true;
    this.picker.fillBig();
  },

  relabel() {
    const form = $("#report-form");
    const big = this.picker.big.value, cls = form.class_code.value, part = this.part;
    this.picker.fillBig(big);
    this.picker.fillClasses(cls);
    this.part = part;
    this.showPart();
    this.showPosition();
    this.renderNearby();
  },
};
