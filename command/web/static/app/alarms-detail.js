// One device alarm in the detail pane of /alarms: what was raised, by which device and rule,
// the values that raised it, who acknowledged it and when it cleared, its part and case,
// the comments (评论), and for roles that may: 确认 with an optional note, and a comment.
// Mirror of command/auth.py incident.report: who is offered 升级为突发事件 (the server decides).
const ALARM_PROMOTE_ROLES = new Set(["admin", "leader", "commander", "shift_lead", "operator", "dispatcher"]);
Object.assign(STRINGS.zh, { promote_incident: "升级为突发事件" });
Object.assign(STRINGS.en, { promote_incident: "Promote to an incident" });
const alarmDetail = {
  current: null, message: "",

  clear() {
    this.current = null;
    $("#alarm-detail").innerHTML = html`<p class="hint">${t("al_pick")}</p>`;
  },

  async show(id, message = "") {            // message: a STRINGS key
    try {
      this.current = (await api.get(`/api/alarms/${id}`)).data;
    } catch (err) {
      this.current = null;
      $("#alarm-detail").innerHTML = html`<p class="notice">${explainError(err)}</p>`;
      return;
    }
    this.message = message;
    alarmList.select(id);
    this.render();
  },

  // The alarm shown, again (a live event may have changed it); the forms' text is kept.
  async reload() {
    if (!this.current) return;
    const pane = $("#alarm-detail");
    const typed = {};
    $$("textarea", pane).forEach((el) => { typed[el.name] = el.value; });
    try {
      this.current = (await api.get(`/api/alarms/${this.current.id}`)).data;
    } catch (err) {
      return;
    }
    this.render();
    $$("textarea", pane).forEach((el) => { if (typed[el.name]) el.value = typed[el.name]; });
  },

  render() {
    const a = this.current;
    if (!a) { this.clear(); return; }
    const fields = deviceTypes.fields(a.device_type);
    const canAct = DEVICE_ALARM_ROLES.has(api.user.role);
    const unacked = a.status.endsWith("_unack");
    $("#alarm-detail").innerHTML = html`<div class="dv-head" data-alarm="${a.id}">
        <h2>${ruleName(a.rule_id, a.rule_name)}</h2>${severityBadge(a.severity)} <span class="al-status">${alarmStatusBadge(a.status)}</span>
        <span class="spacer"></span>${ALARM_PROMOTE_ROLES.has(api.user.role) ? html`<a id="alarm-promote" class="promote"
          href="/incidents?promote=device_alarm:${a.id}">${t("promote_incident")}</a>` : ""}
        <button type="button" id="alarm-reload">${t("refresh")}</button></div>
      <p id="alarm-msg" class="ok" role="status">${this.message ? t(this.message) : ""}</p>
      <dl class="dv-facts">
        <dt>${t("al_device")}</dt><dd><a href="/devices#device/${encodeURIComponent(a.device_id)}">${a.device_id}</a>
          · ${deviceTypes.name(a.device_type)}</dd>
        <dt>${t("al_raised")}</dt><dd>${fmtTime(a.raised_at, true)}</dd>
        <dt>${t("al_last")}</dt><dd>${fmtTime(a.last_at, true)} · ${t("al_repeats")} ${a.repeats}</dd>
        <dt>${t("al_value")}</dt><dd class="al-value">${valuesLine(a.device_type, a.value || {}) || "—"}</dd>
        <dt>${t("al_acked")}</dt><dd class="al-acked">${a.acked_at ? html`${a.acked_by} · ${fmtTime(a.acked_at, true)}` : "—"}</dd>
        <dt>${t("al_cleared_at")}</dt><dd>${a.cleared_at ? html`${fmtTime(a.cleared_at, true)} · ${a.cleared_by}` : "—"}</dd>
        ${a.escalated_at ? html`<dt>${t("al_escalated")}</dt><dd>${fmtTime(a.escalated_at, true)}</dd>` : ""}
        <dt>${t("al_part")}</dt><dd>${a.part_id || "—"}</dd>
        <dt>${t("al_case")}</dt><dd>${a.case_id ? html`<a class="al-case" href="/console#case/${a.case_id}">#${a.case_id}</a>` : "—"}</dd>
        <dt>${t("dv_position")}</dt><dd>${a.lon != null ? `${a.lon.toFixed(6)}, ${a.lat.toFixed(6)}` : "—"}</dd>
      </dl>
      ${canAct ? html`${unacked ? html`<form id="alarm-ack" class="action-form">
          <label>${t("note_optional")} <textarea name="note" rows="2" maxlength="2000"></textarea></label>
          <div class="row"><button type="submit" class="primary">${t("al_ack")}</button></div>
          <p class="error" role="alert"></p></form>` : ""}` : html`<p class="hint">${t("al_view_only")}</p>`}
      <section><h3>${t("al_comments")}</h3>
        <ul id="alarm-comments" class="plain">${a.comments.length ? a.comments.map((c) => html`<li>
          <span class="hint">${fmtTime(c.at, true)} · ${c.author}</span><div class="al-comment-body">${c.body}</div></li>`)
          : html`<li class="hint">${t("al_no_comments")}</li>`}</ul>
        ${canAct ? html`<form id="alarm-comment" class="action-form">
          <label>${t("al_comment_body")} <textarea name="body" rows="2" maxlength="2000" required></textarea></label>
          <div class="row"><button type="submit">${t("al_comment")}</button></div>
          <p class="error" role="alert"></p></form>` : ""}
      </section>`;
    $("#alarm-reload").addEventListener("click", () => this.show(a.id));
    const ack = $("#alarm-ack");
    if (ack) ack.addEventListener("submit", (e) => {
      e.preventDefault();
      this.acknowledge(a.id, ack.note.value.trim() || null, $("button[type=submit]", ack), $(".error", ack));
    });
    const comment = $("#alarm-comment");
    if (comment) comment.addEventListener("submit", (e) => { e.preventDefault(); this.comment(comment); });
  },

  // 确认, from the detail (with a note) or a list row (without): a refusal is said where it was asked.
  async acknowledge(id, note, button, error = null) {
    button.disabled = true;
    if (error) error.textContent = "";
    try {
      await postJson(`/api/alarms/${id}/ack`, note ? { note } : {});
    } catch (err) {
      button.disabled = false;
      if (error) error.textContent = explainError(err);
      else $("#alarm-count").textContent = explainError(err);
      if (err.status === 409) alarmList.load();          // someone else was quicker: show what is now
      return;
    }
    await alarmList.load();
    if (this.current && this.current.id === id) await this.show(id, "al_acked_ok");
  },

  async comment(form) {
    const submit = $("button[type=submit]", form), error = $(".error", form);
    submit.disabled = true;
    error.textContent = "";
    try {
      await postJson(`/api/alarms/${this.current.id}/comments`, { body: form.body.value.trim() });
    } catch (err) {
      submit.disabled = false;
      error.textContent = explainError(err);
      return;
    }
    await this.show(this.current.id, "al_commented_ok");
  },
};
