// Public warnings (预警信息, CAP 1.2) of one incident: the list with each one's state, a draft
// form (from the plan's template: the values it fills in, the area, how long it holds), and
// approve (签发) / reject for commanders and leaders. An issued warning links to its .cap.
const incAlerts = {
  items: [], formFor: null, preview: null,

  reset() { this.items = []; this.formFor = null; this.preview = null; },

  async load(inc) {
    try {
      this.items = (await api.get(`/api/incidents/${inc.id}/alerts`)).data;
    } catch (err) {
      this.items = [];
      incSay("alert-msg", `${t("al_unavailable")}${explainError(err)}`);
      return;
    }
    if (incDetail.id !== inc.id) return;
    redrawKeeping($("#d-alerts"), () => this.render(inc));
    // The form is drawn once per incident, so a live refresh keeps what is being typed.
    if (this.formFor !== inc.id) this.renderForm(inc); else this.fillReferences();
  },

  issued() { return this.items.filter((a) => a.state === "issued"); },

  render(inc) {
    const box = $("#d-alerts");
    if (!box) return;
    const mayDecide = incCan("alertApprove") && inc.status !== "closed";
    box.innerHTML = this.items.length ? html`<ul class="alerts">${this.items.map((a) => html`<li data-alert="${a.id}" data-state="${a.state}">
        <div><span class="tag">${t(`al_${a.msg_type}`)}</span> <b>${a.headline}</b>
          <span class="al-state st-${a.state}">${t(`als_${a.state}`)}</span></div>
        <div class="hint">${t("al_drafted")} ${a.drafted_by} ${fmtTime(a.drafted_at)}
          ${a.decided_at ? html` · ${t("al_decided")} ${a.decided_by} ${fmtTime(a.decided_at)}` : ""}
          ${a.sent_at ? html` · ${t("al_sent")} ${fmtTime(a.sent_at)}` : ""}
          ${a.expires_at ? html` · ${t("al_expires_at")} ${fmtTime(a.expires_at)}` : ""}</div>
        ${a.rejected_reason ? html`<div class="hint">${t("al_reject_reason")}: ${a.rejected_reason}</div>` : ""}
        ${a.cap_url ? html`<a class="cap-link" href="${a.cap_url}" target="_blank" rel="noopener">${t("al_cap")} (${a.identifier})</a>` : ""}
        ${a.state === "draft" && mayDecide ? html`<div class="al-decide">
          <button type="button" class="primary" data-approve="${a.id}">${t("al_approve")}</button>
          <input name="reject_reason" placeholder="${t("al_reject_reason")}" maxlength="1000">
          <button type="button" data-reject="${a.id}">${t("al_reject")}</button></div>` : ""}
      </li>`)}</ul>`.text : html`<p class="hint">${t("al_none")}</p>`.text;
  },

  renderForm(inc) {
    const box = $("#d-alert-form");
    if (!box) return;
    this.formFor = inc.id;
    if (!incCan("alertDraft") || inc.status === "closed") { box.innerHTML = ""; return; }
    const values = Object.entries(inc.details || {}).map(([k, v]) => `${k}=${v}`).join("\n");
    box.innerHTML = html`<details class="al-form-box"><summary>${t("al_draft")}</summary>
      <form id="alert-form" class="inc-form">
        <label><span>${t("al_msg_type")}</span><select name="msg_type">
          ${["Alert", "Update", "Cancel"].map((m) => html`<option value="${m}">${t(`al_${m}`)}</option>`)}</select></label>
        <label><span>${t("al_references")}</span><select name="references_id"></select></label>
        <label class="wide"><span>${t("al_values")}</span><textarea name="values" rows="3">${values}</textarea></label>
        <label class="wide"><span>${t("al_area")}</span><input name="area_description" maxlength="200" placeholder="${t("al_area_default")}"></label>
        <label><span>${t("al_expires")}</span><input name="expires_in_min" type="number" min="1" value="360"></label>
        <label><span>${t("al_note")}</span><input name="note" maxlength="1000"></label>
        <div class="wide buttons"><button type="submit" class="primary">${t("al_submit")}</button></div>
      </form><div id="alert-preview"></div></details>`.text;
    this.fillReferences();
    $("#alert-form").addEventListener("submit", (e) => { e.preventDefault(); this.draft(e.target); });
  },

  fillReferences() {
    const select = $("#alert-form [name=references_id]");
    if (!select) return;
    const keep = select.value;
    select.innerHTML = html`<option value="">—</option>${this.issued().map((a) =>
      html`<option value="${a.id}">${a.identifier} ${a.headline}</option>`)}`.text;
    if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  },

  // "depth=35" lines → {depth: 35}; numbers stay numbers.
  parseValues(text) {
    const out = {};
    for (const line of text.split("\n")) {
      const at = line.indexOf("=");
      if (at < 1) continue;
      const key = line.slice(0, at).trim(), raw = line.slice(at + 1).trim();
      const n = Number(raw);
      out[key] = raw !== "" && Number.isFinite(n) ? n : raw;
    }
    return out;
  },

  async draft(form) {
    const body = {
      msg_type: form.msg_type.value, references_id: form.references_id.value ? Number(form.references_id.value) : null,
      values: this.parseValues(form.values.value), area_description: form.area_description.value.trim() || null,
      expires_in_min: Number(form.expires_in_min.value) || null, note: form.note.value.trim() || null,
    };
    try {
      const made = await api.json("POST", `/api/incidents/${incDetail.id}/alerts`, body);
      this.showPreview(made.preview);
      incSay("alert-msg", t("d_done_ok"), true);
      await this.load(incDetail.inc);
    } catch (err) {
      incSay("alert-msg", explainError(err));
    }
  },

  showPreview(p) {
    const box = $("#alert-preview");
    if (!box || !p) return;
    box.innerHTML = html`<div class="al-preview"><h4>${t("al_preview")}</h4><b>${p.headline}</b>
      <p>${p.description}</p><p>${p.instruction}</p><p class="hint">${p.area ? p.area.description : ""}</p></div>`.text;
  },

  async onClick(button) {
    const path = button.dataset.approve ? `/api/alerts/${Number(button.dataset.approve)}/approve`
      : button.dataset.reject ? `/api/alerts/${Number(button.dataset.reject)}/reject` : null;
    if (!path) return;
    const body = button.dataset.reject ? { reason: button.closest("li").querySelector("[name=reject_reason]").value.trim() } : {};
    button.disabled = true;
    try {
      await api.json("POST", path, body);
      incSay("alert-msg", t("d_done_ok"), true);
      await incDetail.reload();
    } catch (err) {
      button.disabled = false;
      incSay("alert-msg", explainError(err));
    }
  },
};
