// The device alarm page (/alarms, 设备告警): alarms newest first with filters (state,
// severity, device), severity in colour, status in words, the linked part and case, a quick
// 确认 for unacknowledged ones, and the picked alarm in the detail pane (#alarm/<id>).
// A device_alarm message on the live bus reloads the list and the alarm shown.
const ALARM_LIMIT = 500;
const ALARM_STATE_FILTERS = ["active", "unacknowledged", "cleared", ""];       // "" = all

const alarmList = {
  rows: [], selected: null, loads: 0,

  init() {
    this.fillFilters();
    const form = $("#alarm-filters");
    form.state.addEventListener("change", () => this.load());
    form.severity.addEventListener("change", () => this.load());
    form.addEventListener("submit", (e) => { e.preventDefault(); this.load(); });
    // A device named in the address (from the device page): show its alarms, whatever their state.
    const device = new URLSearchParams(location.search).get("device");
    if (device) { form.device.value = device; form.state.value = ""; }
  },

  fillFilters() {
    const form = $("#alarm-filters");
    const keep = { state: form.state.options.length ? form.state.value : "active", severity: form.severity.value };
    form.state.innerHTML = html`${ALARM_STATE_FILTERS.map((s) => html`<option value="${s}">${t(`al_${s || "all"}`)}</option>`)}`;
    form.severity.innerHTML = html`<option value="">${t("al_all_severities")}</option>${SEVERITIES.map((s) =>
      html`<option value="${s}">${severityName(s)}</option>`)}`;
    form.state.value = keep.state;
    form.severity.value = keep.severity;
    form.device.placeholder = t("al_device_id");
  },

  async load() {
    const form = $("#alarm-filters");
    const params = new URLSearchParams({ limit: String(ALARM_LIMIT) });
    for (const name of ["state", "severity", "device"]) {
      const value = form[name].value.trim();
      if (value) params.set(name, value);
    }
    try {
      this.rows = (await api.get(`/api/alarms?${params}`)).data;
      this.loads++;
    } catch (err) {
      $("#alarm-count").textContent = explainError(err);
      return;
    }
    this.render();
  },

  render() {
    const canAct = DEVICE_ALARM_ROLES.has(api.user.role);
    $("#alarm-table tbody").innerHTML = html`${this.rows.map((a) => html`<tr data-alarm="${a.id}"
        class="sev-row-${a.severity}${a.id === this.selected ? " selected" : ""}" tabindex="0">
      <td>${severityBadge(a.severity)}</td>
      <td><b>${ruleName(a.rule_id, a.rule_name)}</b><br><a class="hint" href="/devices#device/${encodeURIComponent(a.device_id)}">${a.device_id}</a>
        <span class="hint">${deviceTypes.name(a.device_type)}</span></td>
      <td class="al-status">${alarmStatusBadge(a.status)}</td>
      <td>${fmtTime(a.raised_at)}${a.last_at !== a.raised_at ? html`<br><span class="hint">${t("al_last")} ${fmtTime(a.last_at)}</span>` : ""}</td>
      <td>${a.repeats}</td><td>${a.part_id || "—"}</td>
      <td>${a.case_id ? html`<a class="al-case" href="/console#case/${a.case_id}">#${a.case_id}</a>` : "—"}</td>
      <td>${canAct && a.status.endsWith("_unack") ? html`<button type="button" class="al-quick-ack">${t("al_ack")}</button>` : ""}</td></tr>`)}`;
    $$("#alarm-table tbody tr").forEach((tr) => {
      const open = () => { location.hash = `#alarm/${tr.dataset.alarm}`; };
      tr.addEventListener("click", (e) => { if (!e.target.closest("a, button")) open(); });
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter" && e.target === tr) open(); });
      const ack = $(".al-quick-ack", tr);
      if (ack) ack.addEventListener("click", () => alarmDetail.acknowledge(Number(tr.dataset.alarm), null, ack));
    });
    $("#alarm-count").textContent = this.rows.length ? `${this.rows.length} ${t("al_alarms")}` : t("al_none");
  },

  select(id) {
    this.selected = id;
    $$("#alarm-table tbody tr").forEach((tr) => tr.classList.toggle("selected", Number(tr.dataset.alarm) === id));
  },
};

async function routeAlarm() {
  const match = location.hash.match(/^#alarm\/(\d+)$/);
  if (match) return alarmDetail.show(Number(match[1]));
  alarmDetail.clear();
  alarmList.select(null);
}

startShell(async () => {
  try {
    await deviceTypes.load();
  } catch (err) {                              // a role that may not read devices
    $("#app").innerHTML = html`<p class="notice">${explainError(err)}</p>`;
    return;
  }
  alarmList.init();
  await alarmList.load();
  window.addEventListener("hashchange", routeAlarm);
  document.addEventListener("citygrid:language", () => {
    alarmList.fillFilters();
    alarmList.render();
    alarmDetail.render();
  });
  const reload = throttled(() => { alarmList.load(); alarmDetail.reload(); });
  listenLive((msg) => { if (msg.kind === "device_alarm") reload(); },
             () => { alarmList.load(); alarmDetail.reload(); },
             (text) => { $("#alarm-live-msg").textContent = text; });
  await routeAlarm();
  document.body.dataset.ready = "true";      // for browser tests and screenshots
});
