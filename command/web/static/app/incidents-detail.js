// One incident: header, a small map with the point and the affected area, the commander's
// controls (status, level with a reason, plan activation), the tasks (incidents-tasks.js),
// the dispatch orders, the public warnings (incidents-alerts.js), the timeline, and the links
// to the situation map and — once closed — the after-action report.
const incDetail = {
  id: null, inc: null, events: [], plans: [], map: null, areaLayer: null, seq: 0, report: null,

  clear() {
    if (this.map) { this.map.remove(); this.map = null; }
    if (this.report) URL.revokeObjectURL(this.report.url);
    this.id = null; this.inc = null; this.events = []; this.report = null;
    incTasks.reset();
    incAlerts.reset();
  },

  async show(id) {
    this.clear();
    this.id = id;
    incList.select(id);
    $("#inc-pane").innerHTML = html`<article id="inc-detail" data-id="${id}">
      <header id="d-head"><p class="hint">${t("in_loading")}</p></header>
      <p id="d-msg" class="error" role="alert"></p>
      <div class="d-top"><div id="d-map" class="d-map" aria-label="map"></div><dl id="d-facts" class="d-facts"></dl></div>
      <section id="d-command" class="d-section"></section>
      <section class="d-section"><h3>${t("d_plans")}</h3><div id="d-plans"></div></section>
      <section class="d-section"><h3>${t("d_tasks")}</h3><p id="task-msg" class="error" role="alert"></p>
        <div id="d-tasks"></div></section>
      <section class="d-section"><h3>${t("d_orders")}</h3><p id="order-msg" class="error" role="alert"></p>
        <div id="d-orders"></div></section>
      <section class="d-section"><h3>${t("al_title")}</h3><p id="alert-msg" class="error" role="alert"></p>
        <div id="d-alerts"></div><div id="d-alert-form"></div></section>
      <section class="d-section"><h3>${t("d_timeline")}</h3><ol id="d-timeline" class="d-timeline"></ol></section>
    </article>`.text;
    if (incPage.flash) { incSay("d-msg", incPage.flash, true); incPage.flash = ""; }
    if (await this.reload()) this.drawMap();
  },

  // Fetch the incident (with its tasks and orders), its timeline and warnings, and draw them.
  // Only the newest of overlapping reloads draws.
  async reload() {
    const id = this.id, seq = ++this.seq;
    let inc, events;
    try {
      [inc, events] = await Promise.all([api.get(`/api/incidents/${id}`), api.get(`/api/incidents/${id}/timeline`)]);
    } catch (err) {
      if (seq !== this.seq || id !== this.id) return false;
      if (err.status === 404) $("#inc-pane").innerHTML = html`<p class="notice">${explainError(err)}</p>`.text;
      else incSay("d-msg", explainError(err));
      return false;
    }
    if (seq !== this.seq || id !== this.id) return false;
    this.inc = inc.data;
    this.events = events.data;
    this.render();
    await Promise.all([incAlerts.load(this.inc), incTasks.refreshSuggestions(this.inc)]);
    return true;
  },

  render() {
    const inc = this.inc;
    const article = $("#inc-detail");
    article.dataset.version = String(inc.version);
    article.dataset.status = inc.status;
    this.renderHead(inc);
    this.renderFacts(inc);
    redrawKeeping($("#d-command"), () => this.renderCommand(inc));
    this.renderPlans(inc);
    redrawKeeping($("#d-tasks"), () => incTasks.render(inc));
    this.renderOrders(inc);
    this.renderTimeline();
    if (this.map) this.drawArea();
  },

  renderHead(inc) {
    const stamps = ["reported", "verified", "responding", "contained", "closed"]
      .filter((s) => inc[`${s}_at`]).map((s) => html`<span>${t(`d_${s}`)} ${fmtTime(inc[`${s}_at`])}</span>`);
    $("#d-head").innerHTML = html`<h2>${drillBadge(inc.drill)}<span class="d-no">${inc.incident_no}</span>
        <span class="d-title">${inc.title}</span></h2>
      <div class="d-badges">${levelBadge(inc.level)} ${statusBadge(inc.status)}
        <span>${catName(inc.category)} / ${catName(inc.subtype)}</span></div>
      <div class="d-times hint">${stamps}</div>
      <div class="d-links"><a id="d-situation" href="/incidents/${inc.id}/situation">${t("d_situation")}</a>
        ${inc.status === "closed" ? html`
          <button type="button" class="link" data-report="html">${t("d_report_html")}</button>
          <button type="button" class="link" data-report="pdf">${t("d_report_pdf")}</button>
          ${this.report ? html`<a id="d-report-link" href="${this.report.url}" target="_blank" rel="noopener">${t(`d_report_${this.report.ext}`)}</a>` : ""}`
          : html`<span class="hint">${t("d_report_needs_close")}</span>`}</div>`.text;
  },

  renderFacts(inc) {
    const details = Object.entries(inc.details || {});
    const links = (inc.links || []).map((l) => html`<li>${this.linkTo(l)}</li>`);
    $("#d-facts").innerHTML = html`
      <dt>${t("d_by")}</dt><dd>${inc.reported_by}</dd>
      <dt>${t("d_grid")}</dt><dd>${inc.grid_code}</dd>
      <dt>${t("d_radius")}</dt><dd>${inc.radius_m ? `${inc.radius_m} m` : "—"}</dd>
      ${inc.description ? html`<dt>${t("description")}</dt><dd>${inc.description}</dd>` : ""}
      ${details.length ? html`<dt>${t("d_details")}</dt><dd>${details.map(([k, v]) => html`<span class="kv">${k} = ${String(v)}</span> `)}</dd>` : ""}
      ${links.length ? html`<dt>${t("d_links")}</dt><dd><ul class="plain">${links}</ul></dd>` : ""}`.text;
  },

  linkTo(link) {
    const label = `${t(`src_${link.kind}`)} ${link.ref_id}`;
    const href = { case: `/console#case/${link.ref_id}`, device_alarm: `/alarms#alarm/${link.ref_id}` }[link.kind];
    return href ? html`<a href="${href}">${label}</a>` : label;
  },

  renderCommand(inc) {
    const box = $("#d-command");
    if (!inc.can_command || inc.status === "closed") { box.hidden = true; box.innerHTML = ""; return; }
    box.hidden = false;
    const up = INC_LEVELS[INC_LEVELS.indexOf(inc.level) - 1];       // the usual change: one level up
    box.innerHTML = html`<div class="d-status">
        ${INC_NEXT[inc.status].map((s) => html`<button type="button" data-status="${s}" class="${s === "closed" ? "danger" : ""}">${t(`go_${s}`)}</button>`)}
        <input name="status_note" placeholder="${t("d_status_note")}" maxlength="2000"></div>
      <div class="d-level"><select name="level" aria-label="level">
          ${INC_LEVELS.filter((lv) => lv !== inc.level).map((lv) => html`<option value="${lv}" ${lv === up ? html`selected` : ""}>${lv} ${t(`lv_${INC_LEVELS.indexOf(lv) + 1}`)}</option>`)}</select>
        <input name="level_reason" placeholder="${t("d_level_reason")}" maxlength="2000">
        <button type="button" id="d-level-go">${t("d_change_level")}</button></div>`.text;
  },

  covering(inc) {
    return this.plans.filter((p) => p.categories.includes(inc.category) && (!p.subtypes.length || p.subtypes.includes(inc.subtype)));
  },

  renderPlans(inc) {
    const acts = inc.activations || [];
    const rows = acts.map((a) => html`<li data-plan="${a.plan_id}">${a.plan_name} v${a.plan_version} · ${a.level}${t("d_response")}
      · ${t(a.automatic ? "d_auto" : "d_manual")} · ${fmtTime(a.activated_at)}</li>`);
    let chooser = "";
    if (!acts.length && inc.can_command && inc.status !== "closed") {
      const plans = this.covering(inc);
      chooser = plans.length ? html`<div class="d-activate"><select name="plan_id" aria-label="${t("d_choose_plan")}">
          ${plans.map((p) => html`<option value="${p.id}">${p.name}</option>`)}</select>
        <button type="button" id="d-activate-go">${t("d_activate")}</button></div>`
        : html`<p class="hint">${t("d_no_matching_plan")}</p>`;
    }
    $("#d-plans").innerHTML = html`${acts.length ? html`<ul class="plain">${rows}</ul>` : html`<p class="hint">${t("d_no_plan")}</p>`}${chooser}`.text;
  },

  renderOrders(inc) {
    const box = $("#d-orders");
    const orders = inc.orders || [];
    if (!orders.length) { box.innerHTML = html`<p class="hint">${t("d_no_orders")}</p>`.text; return; }
    const mayAnswer = incCan("dispatch") || api.user.role === "department";
    const next = { sent: ["acknowledge", "arrive", "release"], acknowledged: ["arrive", "release"], arrived: ["release"] };
    const tasks = new Map((inc.tasks || []).map((task) => [task.id, task.title]));
    box.innerHTML = html`<table class="d-orders"><thead><tr><th>${t("d_resource")}</th><th>${t("d_quantity")}</th>
      <th>${t("in_status")}</th><th>${t("d_ordered")}</th><th>${t("d_ack_due")}</th><th></th></tr></thead><tbody>
      ${orders.map((o) => {
        const late = o.status === "sent" && Date.parse(o.ack_due_at) < Date.now();
        return html`<tr data-order="${o.id}" data-status="${o.status}">
          <td><b>${o.name}</b> <span class="hint">${incTasks.typeName(o.type_code)}${o.task_id && tasks.has(o.task_id) ? ` · ${tasks.get(o.task_id)}` : ""}</span></td>
          <td>${o.quantity} ${LANG === "en" ? "" : o.unit}</td>
          <td class="order-status">${t(`os_${o.status}`)}</td>
          <td>${o.ordered_by} ${fmtTime(o.ordered_at)}</td>
          <td class="${late ? "late" : ""}">${fmtTime(o.ack_due_at)}${late ? html` <b>${t("d_unacked_late")}</b>` : ""}</td>
          <td>${mayAnswer && inc.status !== "closed" ? (next[o.status] || []).map((a) =>
            html`<button type="button" data-order-action="${a}" data-order="${o.id}">${t(`oa_${a}`)}</button>`) : ""}</td></tr>`;
      })}</tbody></table>`.text;
  },

  renderTimeline() {
    const events = [...this.events].reverse();
    $("#d-timeline").innerHTML = events.length ? events.map((e) => html`<li data-kind="${e.kind}">
      <time>${fmtTime(e.at, true)}</time> <span class="who">${e.actor}</span> ${e.message}</li>`.text).join("")
      : html`<li class="hint">${t("d_no_events")}</li>`.text;
  },

  // ------------------------------------------------------------ the map
  drawMap() {
    const inc = this.inc;
    this.map = smallMap("d-map", [inc.lat, inc.lon], 16);
    drawBaseMap(this.map, boxAround(L.latLng(inc.lat, inc.lon), BASE_HALF_DEG));
    this.areaLayer = L.layerGroup().addTo(this.map);
    this.drawArea();
    const bounds = this.areaLayer.getLayers().length > 1 ? L.featureGroup(this.areaLayer.getLayers()).getBounds() : null;
    if (bounds && bounds.isValid()) this.map.fitBounds(bounds, { padding: [16, 16], maxZoom: 17 });
  },

  drawArea() {
    const inc = this.inc;
    this.areaLayer.clearLayers();
    if (inc.area) {
      L.geoJSON(inc.area, { style: { color: "#c62828", weight: 2, fillColor: "#e53935", fillOpacity: 0.15 },
                            interactive: false }).addTo(this.areaLayer);
    }
    L.marker([inc.lat, inc.lon], { icon: L.divIcon({ className: "inc-marker", iconSize: [24, 24], iconAnchor: [12, 12],
                                                     html: "<span>!</span>" }) })
      .bindTooltip(escapeText(`${inc.incident_no} ${inc.title}`)).addTo(this.areaLayer);
  },

  // ------------------------------------------------------------ acting
  // Run one change; on a 409 reload and say whether someone else changed it in the meantime
  // (the version moved) or the change is refused as things stand (e.g. mandatory tasks open).
  async act(area, request, versionNow) {
    const sent = versionNow();
    try {
      await request();
      incSay(area, t("d_done_ok"), true);
    } catch (err) {
      if (err.status === 409) {
        await this.reload();
        const now = versionNow();
        incSay(area, (now !== undefined && now !== sent ? t("d_changed_reloaded") : "") + explainError(err));
        return false;
      }
      incSay(area, explainError(err));
      return false;
    }
    await this.reload();
    return true;
  },

  async onClick(e) {
    const b = e.target.closest("button");
    if (!b || !this.inc) return undefined;
    const ok = await this.dispatchClick(b);
    if (ok === true && b.closest("#d-command")) $$("#d-command input").forEach((el) => { el.value = ""; });
    return ok;
  },

  async dispatchClick(b) {
    const id = this.id, box = $("#d-command");
    const incVersion = () => this.inc && this.inc.version;
    if (b.dataset.status) {
      const body = { status: b.dataset.status, note: box.querySelector("[name=status_note]").value, version: this.inc.version };
      return this.act("d-msg", () => api.json("POST", `/api/incidents/${id}/status`, body), incVersion);
    }
    if (b.id === "d-level-go") {
      const body = { level: box.querySelector("[name=level]").value, reason: box.querySelector("[name=level_reason]").value.trim(),
                     version: this.inc.version };
      return this.act("d-msg", () => api.json("POST", `/api/incidents/${id}/level`, body), incVersion);
    }
    if (b.id === "d-activate-go") {
      const body = { plan_id: $("#d-plans [name=plan_id]").value, version: this.inc.version };
      return this.act("d-msg", () => api.json("POST", `/api/incidents/${id}/activate`, body), incVersion);
    }
    if (b.dataset.orderAction) {
      const path = `/api/dispatch-orders/${Number(b.dataset.order)}/${b.dataset.orderAction}`;
      return this.act("order-msg", () => api.json("POST", path, {}), () => undefined);
    }
    if (b.dataset.report) return this.openReport(b.dataset.report);
    if (b.closest("#d-tasks")) return incTasks.onClick(b);
    if (b.closest("#d-alerts, #d-alert-form")) return incAlerts.onClick(b);
    return undefined;
  },

  // The report needs the bearer token, which a plain link would not carry: fetch it, in the
  // page's language, and open the answer as a blob URL (with a link kept in case the browser
  // blocks the new window).
  async openReport(ext) {
    try {
      const res = await fetch(`/api/incidents/${this.id}/report.${ext}?lang=${LANG === "en" ? "en" : "zh"}`, { headers: api.authHeaders() });
      if (!res.ok) {
        const data = await res.json().catch(() => ({}));
        throw new ApiError(res.status, data.message || res.statusText);
      }
      if (this.report) URL.revokeObjectURL(this.report.url);
      this.report = { ext, url: URL.createObjectURL(await res.blob()) };
      this.renderHead(this.inc);                 // the link stays through later redraws
      window.open(this.report.url, "_blank", "noopener");
    } catch (err) {
      incSay("d-msg", explainError(err));
    }
  },
};
