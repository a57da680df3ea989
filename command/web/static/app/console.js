// The console (/console): routes #case/<id> and #hotline, the notifications badge, wiring.
const NOTIFY_POLL_MS = 30000;
const HOTLINE_ROLES = ["operator", "shift_lead", "admin"];
let consoleCatalog = null;

async function route() {
  casePage.clear();
  hotline.clear();
  const hash = location.hash;
  const caseMatch = hash.match(/^#case\/(\d+)$/);
  if (caseMatch) return casePage.show(Number(caseMatch[1]));
  if (hash === "#hotline" && HOTLINE_ROLES.includes(api.user.role)) return hotline.show(consoleCatalog);
  $("#detail-pane").innerHTML = html`<p class="hint">${t("pick_case")}</p>`;
}

const notifications = {
  items: [],

  async load() {
    const before = new Set(this.items.map((n) => n.id));
    try {
      this.items = (await api.get("/api/notifications?unread=true&limit=50")).data;
    } catch (err) {
      return;
    }
    // Something new happened to cases I care about: the list is stale.
    if (before.size && this.items.some((n) => !before.has(n.id))) caseList.load();
    const count = $("#notif-count");
    count.hidden = !this.items.length;
    count.textContent = String(this.items.length);
    if (!$("#notif-panel").hidden) this.render();
  },

  render() {
    const panel = $("#notif-panel");
    panel.innerHTML = this.items.length ? html`<ul class="plain">${this.items.map((n) => html`<li>
        <a href="${n.case_id ? `#case/${n.case_id}` : "#"}" data-id="${n.id}">${n.message}</a>
        <span class="hint">${fmtTime(n.at)}</span></li>`)}</ul>` : html`<p class="hint">${t("no_notifications")}</p>`;
    $$("#notif-panel a[data-id]").forEach((a) => a.addEventListener("click", async () => {
      panel.hidden = true;
      if (a.getAttribute("href") === location.hash) route();     // same case: no hashchange comes
      try { await api.post(`/api/notifications/${a.dataset.id}/read`, null); } catch (err) { /* already read */ }
      this.load();
    }));
  },

  toggle() {
    const panel = $("#notif-panel");
    panel.hidden = !panel.hidden;
    if (!panel.hidden) this.render();
  },
};

startShell(async (user) => {
  const [flow, catalog, areas, departments] = await Promise.all([
    api.get("/api/flow"), api.get("/api/catalog"), api.get("/api/areas"), api.get("/api/departments"),
  ]);
  consoleCatalog = catalog.data;
  casePage.departments = departments.data;
  caseList.init(flow.data, catalog.data, areas.data);
  if (HOTLINE_ROLES.includes(user.role)) $("#hotline-btn").hidden = false;
  if (user.role === "inspector") {
    const note = $("#console-note");
    note.hidden = false;
    note.innerHTML = html`${t("inspectors_use_m")} <a href="/m">/m</a>`;
  }
  $("#notif-btn").addEventListener("click", () => notifications.toggle());
  window.addEventListener("hashchange", route);
  document.addEventListener("citygrid:language", () => {
    caseList.fillFilters();
    caseList.render();
    if (casePage.current) casePage.show(casePage.current.id);
    else if (location.hash !== "#hotline") route();
  });
  await Promise.all([caseList.load(), notifications.load()]);
  setInterval(() => notifications.load(), NOTIFY_POLL_MS);
  await route();
  document.body.dataset.ready = "true";      // for browser tests and screenshots
});
