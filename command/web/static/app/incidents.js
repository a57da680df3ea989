// The emergency console (应急指挥台, /incidents): the list on the left; on the right the report
// form (#new, or ?promote=KIND:ID) or one incident (#N, or ?id=N). The live bus says when an
// incident changed: the list and the open incident reload, a burst of changes making one reload.
const LIVE_RELOAD_MS = 800;

const incPage = {
  catalog: null, onDuty: [], flash: "", promote: null, pendingDetail: false,

  async start(user) {
    const params = new URLSearchParams(location.search);
    this.promote = incForm.parsePromote(params.get("promote"));
    if (params.get("id") && /^\d+$/.test(params.get("id"))) {
      history.replaceState(null, "", `${location.pathname}#${params.get("id")}`);
    }
    const [catalog, plans, onDuty] = await Promise.all([
      api.get("/api/emergency/catalog"), api.get("/api/plans"),
      INC_ROLES.command.has(user.role) ? api.get("/api/duty/now") : Promise.resolve({ data: [] })]);
    this.catalog = catalog.data;
    incDetail.plans = plans.data;
    this.onDuty = onDuty.data.filter((p) => p.holder).map((p) => ({ ...p.holder, post: p.post }));
    $("#inc-new").hidden = !incCan("report");
    incList.init();
    window.addEventListener("hashchange", () => this.route());
    document.addEventListener("citygrid:language", () => this.relabel());
    $("#inc-pane").addEventListener("click", (e) => incDetail.onClick(e));
    $("#inc-pane").addEventListener("change", (e) => {
      if (e.target.matches("#d-tasks input[data-check]")) incTasks.onCheck(e.target);
    });
    document.addEventListener("focusout", () => setTimeout(() => this.maybeReloadDetail(), 0));
    await incList.load();
    await this.route();
    this.listen();
    document.body.dataset.ready = "true";      // for browser tests and screenshots
  },

  async route() {
    const m = /^#(\d+)$/.exec(location.hash);
    incForm.clear();
    if (m) return incDetail.show(Number(m[1]));
    incDetail.clear();
    incList.select(null);
    if ((location.hash === "#new" || this.promote) && incCan("report")) return incForm.show(this.catalog, this.promote);
    $("#inc-pane").innerHTML = html`<p class="hint">${t("in_pick")}</p>`.text;
    return undefined;
  },

  relabel() {
    incList.fillFilters();
    incList.render();
    if (incDetail.id) incDetail.show(incDetail.id); else this.route();
  },

  // Someone typing in the open incident keeps the page still; the reload comes when they leave.
  maybeReloadDetail() {
    if (!this.pendingDetail || !incDetail.id) return;
    const el = document.activeElement;
    if (el && el.closest("#inc-detail") && el.matches("input:not([type=checkbox]), textarea, select")) return;
    this.pendingDetail = false;
    incDetail.reload();
  },

  listen() {
    const listLater = throttled(() => incList.load(), LIVE_RELOAD_MS);
    const detailLater = throttled(() => { this.pendingDetail = true; this.maybeReloadDetail(); }, LIVE_RELOAD_MS);
    listenLive((msg) => {
      if (msg.kind === "incident") {
        listLater();
        if (Number(msg.id) === incDetail.id) detailLater();
      } else if (msg.kind === "alert" && incDetail.id) {
        detailLater();
      }
    }, () => { listLater(); if (incDetail.id) detailLater(); },
    (text) => { $("#inc-live-msg").textContent = text ? t("d_live_lost") : ""; });
  },
};

startShell((user) => incPage.start(user));
