// The inspector's phone page (/m): tabs, the outbox badge and its retries, language switch.
const RETRY_MS = 15000;

function showTab(name) {
  $$("nav.tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  $$("section.tab").forEach((s) => { s.hidden = s.id !== `tab-${name}`; });
  if (name === "report" && report.map) report.map.invalidateSize();
  if (name === "tasks") tasks.load();
}

async function refreshOutbox(user) {
  const items = await outbox.list(user.username);
  const pending = items.filter((i) => i.status === "pending").length;
  const badge = $("#queue-badge");
  badge.hidden = pending === 0;
  badge.textContent = `${t("queued")} ${pending}`;
  const failed = items.filter((i) => i.status === "failed");
  $("#outbox-failed").innerHTML = html`${failed.map((i) => html`<div class="notice failed" data-ref="${i.client_ref}">
    <b>${t("send_failed")}</b> ${fmtTime(i.created_at)} · ${i.fields.class_code} · ${i.fields.description}<br>
    <span class="error">${i.error}</span> <button type="button" class="link discard">${t("discard")}</button></div>`)}`;
  $$("#outbox-failed button.discard").forEach((b) => b.addEventListener("click", () => {
    if (confirm(t("discard_confirm"))) outbox.remove(b.closest("[data-ref]").dataset.ref);
  }));
}

// The catalog rarely changes: keep the last copy so a page opened on a weak network still
// lets the inspector pick a class.
async function loadCatalog() {
  try {
    const { data } = await api.get("/api/catalog");
    localStorage.setItem("citygrid.catalog", JSON.stringify(data));
    return data;
  } catch (err) {
    const kept = localStorage.getItem("citygrid.catalog");
    if (err instanceof TypeError && kept) return JSON.parse(kept);
    throw err;
  }
}

function showNetwork() { $("#net").hidden = navigator.onLine; }

startShell(async (user) => {
  if (user.role !== "inspector") {
    const note = $("#not-inspector");
    note.hidden = false;
    note.innerHTML = html`${t("m_for_inspectors")} <a href="/console">/console</a>`;
    $("#report-form").hidden = true;
    return;
  }
  $$("nav.tabs button").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  $("#tasks-refresh").addEventListener("click", () => tasks.load());

  document.addEventListener("outbox:changed", (e) => {
    const d = e.detail || {};
    const status = $("#report-status");
    if (d.sent) {
      const c = d.result.case;
      status.className = "ok";
      status.textContent = `${t("sent")} ${c.case_no} (${stateName(c.state, c.state_name)})`
        + (d.result.duplicates && d.result.duplicates.length ? ` · ${t("maybe_duplicate")} ${d.result.duplicates.length}` : "");
    } else if (d.failed) {
      status.className = "error";
      status.textContent = `${t("send_failed")}: ${d.failed.error}`;
    } else if (d.unauthorized) {
      status.className = "error";
      status.textContent = t("login_again");
    }
    refreshOutbox(user);
  });
  // Send what waits as soon as the network is back, and on a timer in case no event comes.
  window.addEventListener("online", () => { showNetwork(); outbox.flush(user.username); });
  window.addEventListener("offline", showNetwork);
  setInterval(() => { if (navigator.onLine) outbox.flush(user.username); }, RETRY_MS);
  document.addEventListener("citygrid:language", () => {
    report.relabel(); tasks.renderList(); refreshOutbox(user);
    if (tasks.current) tasks.open(tasks.current.id);
  });
  showNetwork();

  const catalog = await loadCatalog();
  await report.start(user, catalog);
  await refreshOutbox(user);
  outbox.flush(user.username);
  tasks.load();
  document.body.dataset.ready = "true";      // for browser tests and screenshots
});
