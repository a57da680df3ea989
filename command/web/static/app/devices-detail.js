// One device in the detail pane of /devices: its latest values with labels and units, where
// it is, whether it is heard from, its active alarms, the telemetry chart, the command log
// and (for roles that may) the form to send one of its type's commands.
const STATE_WORDS = { alarm: "dv_with_alarms", offline: "dv_offline", normal: "dv_normal" };

const deviceDetail = {
  current: null, alarms: [], commands: [], sent: null,      // sent: the command just queued

  clear() {
    deviceChart.destroy();
    this.current = null;
    $("#device-detail").innerHTML = html`<p class="hint">${t("dv_pick")}</p>`;
  },

  async show(id) {
    let d;
    try {
      d = (await api.get(`/api/devices/${encodeURIComponent(id)}`)).data;
    } catch (err) {
      deviceChart.destroy();
      this.current = null;
      $("#device-detail").innerHTML = html`<p class="notice">${explainError(err)}</p>`;
      return;
    }
    const same = this.current && this.current.id === d.id;
    this.current = d;
    if (!same) { this.alarms = []; this.commands = []; this.sent = null; deviceChart.reset(d); }
    deviceList.select(d.id);
    deviceList.update(d);
    this.render();
    await Promise.all([this.loadAlarms(), this.loadCommands(), deviceChart.load()]);
  },

  // The device row and its alarms again (a live alarm event, a resync).
  async refresh() {
    if (!this.current) return;
    try {
      const d = (await api.get(`/api/devices/${encodeURIComponent(this.current.id)}`)).data;
      this.current = d;
      deviceList.update(d);
      this.renderFacts();
    } catch (err) {
      return;
    }
    await this.loadAlarms();
  },

  render() {
    const d = this.current;
    if (!d) { this.clear(); return; }
    $("#device-detail").innerHTML = html`<div class="dv-head" data-device="${d.id}">
        <h2>${d.id}</h2><span id="dv-state"></span>
        <span class="spacer"></span><button type="button" id="device-reload">${t("refresh")}</button></div>
      <div id="dv-facts"></div>
      <section><h3>${t("dv_active_alarms")}</h3><ul id="dv-alarms" class="plain"></ul></section>
      <section><h3>${t("dv_chart")}</h3><div id="dv-chart-box"></div></section>
      <section><h3>${t("dv_send_command")}</h3><div id="dv-command-box"></div></section>
      <section><h3>${t("dv_commands")}</h3><div id="dv-commands"></div></section>`;
    $("#device-reload").addEventListener("click", () => this.show(d.id));
    this.renderFacts();
    this.renderAlarms();
    deviceChart.render();
    this.renderCommandForm();
    this.renderCommands();
  },

  renderFacts() {
    const d = this.current, box = $("#dv-facts");
    if (!d || !box) return;
    const meta = Object.entries(d.meta || {});
    const state = deviceState(d);
    $("#dv-state").innerHTML = html`<span class="badge dv-state dev-${state}">${t(STATE_WORDS[state])}</span>`;
    box.innerHTML = html`<dl class="dv-facts">
        <dt>${t("dv_type")}</dt><dd>${deviceTypes.name(d.type)}</dd>
        <dt>${t("dv_online")}</dt><dd class="dv-online">${onlineText(d)}${d.seen_at
          ? html` · ${t("dv_seen")} ${fmtTime(d.seen_at, true)}` : ""}</dd>
        <dt>${t("dv_last_reading")}</dt><dd>${fmtTime(d.last_reading_at, true) || "—"}</dd>
        <dt>${t("dv_part")}</dt><dd>${d.part_id || "—"}</dd>
        <dt>${t("grid")}</dt><dd>${d.grid_code || "—"}</dd>
        <dt>${t("dv_dept")}</dt><dd>${d.dept || "—"}</dd>
        <dt>${t("dv_position")}</dt><dd>${d.lon != null ? `${d.lon.toFixed(6)}, ${d.lat.toFixed(6)}` : "—"}</dd>
        ${meta.length ? html`<dt>${t("dv_meta")}</dt><dd>${meta.map(([k, v]) =>
          `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ")}</dd>` : ""}
      </dl>
      <table class="dv-values"><caption>${t("dv_latest")}</caption><tbody>${valueRows(d.type, d.latest).map((r) =>
        html`<tr data-field="${r.field}"><th>${r.label}</th><td>${r.text}</td></tr>`)}</tbody></table>`;
  },

  async loadAlarms() {
    const d = this.current;
    if (!d) return;
    try {
      this.alarms = (await api.get(`/api/alarms?device=${encodeURIComponent(d.id)}&state=active`)).data;
    } catch (err) {
      this.alarms = [];
    }
    this.renderAlarms();
  },

  renderAlarms() {
    const list = $("#dv-alarms");
    if (!list) return;
    list.innerHTML = this.alarms.length ? html`${this.alarms.map((a) => html`<li data-alarm="${a.id}">
        ${severityBadge(a.severity)} <a href="/alarms#alarm/${a.id}">${ruleName(a.rule_id, a.rule_name)}</a>
        ${alarmStatusBadge(a.status)} <span class="hint">${fmtTime(a.raised_at)}${a.repeats ? ` · ×${a.repeats + 1}` : ""}</span></li>`)}`
      : html`<li class="hint">${t("dv_no_alarms")}</li>`;
  },

  async loadCommands() {
    const d = this.current;
    if (!d) return;
    try {
      this.commands = (await api.get(`/api/devices/${encodeURIComponent(d.id)}/commands?limit=20`)).data;
    } catch (err) {
      this.commands = [];
    }
    this.renderCommands();
  },

  renderCommands() {
    const box = $("#dv-commands");
    if (!box) return;
    const specs = deviceTypes.commands(this.current.type);
    box.innerHTML = this.commands.length ? html`<table class="timeline dv-command-log"><thead><tr>
        <th>${t("when")}</th><th>${t("dv_command")}</th><th>${t("status")}</th><th>${t("dv_by")}</th></tr></thead>
      <tbody>${this.commands.map((c) => commandRow(c, specs[c.name]))}</tbody></table>`
      : html`<p class="hint">${t("dv_no_commands")}</p>`;
  },

  renderCommandForm() {
    const box = $("#dv-command-box");
    const specs = deviceTypes.commands(this.current.type);
    const names = Object.keys(specs);
    if (!names.length) { box.innerHTML = html`<p class="hint">${t("dv_no_command_types")}</p>`; return; }
    if (!DEVICE_COMMAND_ROLES.has(api.user.role)) { box.innerHTML = html`<p class="hint">${t("dv_cmd_not_allowed")}</p>`; return; }
    box.innerHTML = html`<form id="dv-command-form" class="action-form">
        <label>${t("dv_command")} <select name="command">${names.map((n) =>
          html`<option value="${n}">${commandLabel(n, specs[n])}</option>`)}</select></label>
        <div class="dv-params"></div>
        <div class="row"><button type="submit" class="primary">${t("dv_send")}</button></div>
        <p class="ok" role="status">${this.sentText(specs)}</p><p class="error" role="alert"></p></form>`;
    const form = $("#dv-command-form");
    const params = () => {
      const spec = specs[form.elements.command.value].params || {};
      $(".dv-params", form).innerHTML = html`${Object.entries(spec).map(([p, f]) => f.type === "boolean"
        ? html`<label>${fieldLabel(p, f)} <select name="p:${p}"><option value="true">${t("dv_yes")}</option>
            <option value="false">${t("dv_no")}</option></select></label>`
        : html`<label>${fieldLabel(p, f)}${f.unit ? ` (${f.unit})` : ""} <input name="p:${p}" type="number" step="any"
            min="${f.min}" max="${f.max}" required></label>`)}`;
    };
    form.elements.command.addEventListener("change", params);
    params();
    form.addEventListener("submit", (e) => { e.preventDefault(); this.send(form, specs); });
  },

  sentText(specs) {
    const s = this.sent;
    return s ? `${t("dv_queued_ok")}${commandLabel(s.name, specs[s.name])} (#${s.id})` : "";
  },

  async send(form, specs) {
    const d = this.current, name = form.elements.command.value;
    const params = {};
    for (const [p, f] of Object.entries(specs[name].params || {})) {
      const raw = form.elements[`p:${p}`].value;
      params[p] = f.type === "boolean" ? raw === "true" : Number(raw);
    }
    const submit = $("button[type=submit]", form), error = $(".error", form), ok = $(".ok", form);
    submit.disabled = true;
    error.textContent = ok.textContent = "";
    try {
      const made = await postJson(`/api/devices/${encodeURIComponent(d.id)}/commands`, { name, params });
      this.sent = { id: made.id, name };
      ok.textContent = this.sentText(specs);
      await this.loadCommands();
    } catch (err) {
      error.textContent = explainError(err);
    } finally {
      submit.disabled = false;
    }
  },
};

// One line of the command log: when, what (with its parameters), how it went, who sent it.
function commandRow(c, spec) {
  const params = Object.keys(c.params || {}).length ? html`<br><span class="hint">${paramsText(spec, c.params)}</span>` : "";
  const result = c.result == null ? ""
    : html`<br><span class="hint">${typeof c.result === "object" ? JSON.stringify(c.result) : c.result}</span>`;
  return html`<tr data-command="${c.id}"><td>${fmtTime(c.created_at, true)}</td>
    <td>${commandLabel(c.name, spec)}${params}</td>
    <td class="cmd-status cmd-${c.status}">${t(`cmd_${c.status}`)}${result}</td><td>${c.created_by}</td></tr>`;
}

function paramsText(spec, params) {
  const fields = (spec && spec.params) || {};
  return Object.entries(params).map(([p, v]) => `${fieldLabel(p, fields[p])} ${fmtValue(v, fields[p])}`).join(" · ");
}
