// The video wall (视频墙, /wall): the cameras of a group in a 1/4/9/16 layout, each a live
// MJPEG picture (one decode per camera on the server, however many walls watch). A click
// shows one camera alone, another click goes back. A picture that stops is asked for again
// after a pause; the live bus marks cameras going offline and motion on them.
const WALL_RETRY_MS = 5000;
const WALL_MOTION_MS = 4000;

const wall = {
  cameras: [], layout: 4, page: 0, solo: null,

  async start() {
    const form = $("#wall-controls");
    this.layout = Number(new URLSearchParams(location.search).get("layout")) || 4;
    for (const button of $$(".wall-layouts button")) {
      button.addEventListener("click", () => { this.layout = Number(button.dataset.layout); this.solo = null; this.page = 0; this.render(); });
    }
    form.group.addEventListener("change", () => { this.page = 0; this.solo = null; this.render(); });
    $("#wall-prev").addEventListener("click", () => { this.page = Math.max(0, this.page - 1); this.render(); });
    $("#wall-next").addEventListener("click", () => { this.page += 1; this.render(); });
    document.addEventListener("citygrid:language", () => this.render());
    await this.load();
    const reload = throttled(() => this.load(), 2000);
    listenLive((msg) => {
      if (msg.kind === "camera") reload();
      else if (msg.kind === "camera_event" && msg.camera_id) this.flash(msg.camera_id);
    }, reload, (text) => { $("#wall-msg").textContent = text; });
  },

  async load() {
    try {
      this.cameras = (await api.get("/api/cameras")).data.filter((c) => c.active);
    } catch (err) {
      $("#wall-msg").textContent = err.message;
      return;
    }
    const form = $("#wall-controls");
    const groups = [...new Set(this.cameras.map((c) => c.group).filter(Boolean))].sort();
    const chosen = form.group.value;
    form.group.innerHTML = html`<option value="">${t("wall_all")}</option>${groups.map((g) => html`<option>${g}</option>`)}`;
    form.group.value = groups.includes(chosen) ? chosen : "";
    this.render();
  },

  shown() {
    const group = $("#wall-controls").group.value;
    const cams = this.cameras.filter((c) => !group || c.group === group);
    if (this.solo) return { cams: cams.filter((c) => c.id === this.solo), pages: 1 };
    const pages = Math.max(1, Math.ceil(cams.length / this.layout));
    this.page = Math.min(this.page, pages - 1);
    return { cams: cams.slice(this.page * this.layout, (this.page + 1) * this.layout), pages };
  },

  render() {
    const { cams, pages } = this.shown();
    const layout = this.solo ? 1 : this.layout;
    const grid = $("#wall-grid");
    grid.dataset.layout = String(layout);
    for (const b of $$(".wall-layouts button")) b.classList.toggle("on", Number(b.dataset.layout) === layout);
    $("#wall-page").textContent = `${this.page + 1} / ${pages}`;
    const width = layout === 1 ? 1280 : layout === 4 ? 960 : layout === 9 ? 640 : 480;
    const keep = new Map($$(".wall-tile", grid).map((tile) => [Number(tile.dataset.camera), tile]));
    grid.replaceChildren(...cams.map((c) => this.tile(c, width, keep.get(c.id))));
    if (!cams.length) grid.innerHTML = html`<p class="hint">${t("wall_none")}</p>`;
  },

  tile(cam, width, old) {
    const src = `/api/cameras/${cam.id}/mjpeg?width=${width}&token=${encodeURIComponent(api.token)}`;
    const tile = old || document.createElement("div");
    tile.className = "wall-tile";
    tile.dataset.camera = String(cam.id);
    const online = cam.online !== false;
    tile.innerHTML = html`<div class="label"><b>${cam.name}</b><span>${cam.group || ""}</span>
      <span class="state${online ? "" : " off"}" title="${cam.status_reason || ""}">${online ? t("wall_online") : t("wall_offline")}</span></div>`;
    const img = document.createElement("img");
    img.alt = cam.name;
    img.onerror = () => {                               // no picture now: say so, ask again later
      img.hidden = true;
      if (!tile.querySelector(".lost")) tile.insertAdjacentHTML("beforeend", html`<div class="lost">${t("wall_no_signal")}</div>`.text);
      setTimeout(() => { if (tile.isConnected) { tile.querySelector(".lost")?.remove(); img.hidden = false; img.src = `${src}&retry=${Date.now()}`; } }, WALL_RETRY_MS);
    };
    img.onload = () => { tile.dataset.playing = "1"; };
    img.src = src;
    tile.prepend(img);
    tile.onclick = () => { this.solo = this.solo ? null : cam.id; this.render(); };
    return tile;
  },

  flash(cameraId) {
    const tile = $(`.wall-tile[data-camera="${cameraId}"]`);
    if (!tile) return;
    tile.classList.add("motion");
    clearTimeout(tile._motion);
    tile._motion = setTimeout(() => tile.classList.remove("motion"), WALL_MOTION_MS);
  },
};

startShell(() => wall.start());
