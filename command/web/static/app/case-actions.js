// Buttons for exactly the actions the server says this user may take now
// (`allowed_actions`); each opens a small form asking for what its `needs` names.
// The form sends the case version it was drawn from, so a stale tab gets a 409.
//
// opts: departments (for dispatch), duplicates (merge candidates), onDone(result).
function renderActions(box, c, opts = {}) {
  if (!c.allowed_actions.length) {
    box.innerHTML = html`<p class="hint">${t("no_actions")}</p>`;
    return;
  }
  box.innerHTML = html`<div class="action-buttons">${c.allowed_actions.map((a) =>
    html`<button type="button" class="action" data-action="${a.action}">${actionName(a.action, a.name)}</button>`)}</div>
    <form class="action-form" hidden></form>`;
  const form = box.querySelector("form.action-form");
  for (const button of box.querySelectorAll("button.action")) {
    button.addEventListener("click", () => {
      const a = c.allowed_actions.find((x) => x.action === button.dataset.action);
      box.querySelectorAll("button.action").forEach((b) => b.classList.toggle("active", b === button));
      openActionForm(form, c, a, opts);
    });
  }
}

function actionFields(c, a, opts) {
  const needs = new Set(a.needs);
  const fields = [];
  if (needs.has("department_given")) {
    const depts = opts.departments || [];
    fields.push(html`<label>${t("department")} <select name="dept_id" required>
      <option value="">${t("choose")}</option>${depts.map((d) => html`<option value="${d.id}">${d.name}</option>`)}
      </select></label>${c.suggested_dept_name ? html`<p class="hint">${t("suggested")}: ${c.suggested_dept_name}</p>` : ""}`);
  }
  if (needs.has("merge_target_open")) {
    const dups = opts.duplicates || [];
    fields.push(html`<label>${t("merge_into")} <select name="merge_into" required>
      <option value="">${t("choose")}</option>${dups.map((d) => html`<option value="${d.id}">${d.case_no}
        · ${stateName(d.state)} · ${d.distance_m} m</option>`)}</select></label>
      <label>${t("merge_other")} <input name="merge_other" type="number" min="1" inputmode="numeric"></label>`);
  }
  if (needs.has("extension_given")) {
    fields.push(html`<div class="row"><label>${t("ext_amount")} <input name="extension_amount" type="number"
      min="0.5" step="0.5" required></label><label>${t("ext_kind")} <select name="extension_kind">
      <option>工作日</option><option>工作时</option><option>自然时</option></select></label></div>`);
  }
  if (needs.has("after_photo")) {
    fields.push(html`<label>${t("after_photo")} <input name="photos" type="file" accept="image/*"
      capture="environment" multiple required></label><div class="previews"></div>`);
  }
  const noteNeeded = needs.has("note_given") || needs.has("extension_given");
  fields.push(html`<label>${noteNeeded ? t("note_required") : t("note_optional")}
    <textarea name="note" rows="2" maxlength="1000" ${noteNeeded ? html`required` : ""}></textarea></label>`);
  return fields;
}

function openActionForm(form, c, a, opts) {
  form.hidden = false;
  form.dataset.action = a.action;
  form.innerHTML = html`<h4>${actionName(a.action, a.name)}</h4>${actionFields(c, a, opts)}
    <div class="row"><button type="submit" class="primary">${t("confirm_action")}</button>
    <button type="button" class="cancel">${t("cancel")}</button></div><p class="error" role="alert"></p>`;
  const dept = form.querySelector("select[name=dept_id]");
  if (dept && c.suggested_dept_id) dept.value = String(c.suggested_dept_id);     // preselected, changeable
  const photos = form.querySelector("input[name=photos]");
  if (photos) photos.addEventListener("change", () => previewFiles(form.querySelector(".previews"), [...photos.files]));
  form.querySelector("button.cancel").addEventListener("click", () => { form.hidden = true; });
  form.onsubmit = async (e) => {
    e.preventDefault();
    const submit = form.querySelector("button[type=submit]");
    const error = form.querySelector(".error");
    const body = new FormData();
    body.append("expected_version", c.version);
    const note = form.note.value.trim();
    if (note) body.append("note", note);
    if (dept) body.append("dept_id", dept.value);
    if (form.extension_amount) {
      body.append("extension_amount", form.extension_amount.value);
      body.append("extension_kind", form.extension_kind.value);
    }
    if (form.merge_into) {
      const target = form.merge_other.value || form.merge_into.value;
      if (!target) { error.textContent = t("choose_merge_target"); return; }
      body.append("merge_into", target);
    }
    if (photos) {
      body.append("photo_kind", "after");
      for (const f of photos.files) body.append("photos", f, f.name);
    }
    submit.disabled = true;
    error.textContent = "";
    try {
      const result = await api.post(`/api/cases/${c.id}/actions/${a.action}`, body);
      form.hidden = true;
      if (opts.onDone) await opts.onDone(result, a);
    } catch (err) {
      error.textContent = explainError(err);
    } finally {
      submit.disabled = false;
    }
  };
  form.scrollIntoView({ block: "nearest" });
}

// The server's message with a short word on what kind of refusal it is.
function explainError(err) {
  if (err instanceof TypeError) return t("network_down");
  const kind = { 403: "err_403", 404: "err_404", 409: "err_409", 422: "err_422" }[err.status];
  return kind ? `${t(kind)}${err.message}` : err.message;
}

function previewFiles(box, files) {
  if (!box) return;
  box.querySelectorAll("img").forEach((img) => URL.revokeObjectURL(img.src));
  box.innerHTML = "";
  for (const f of files) {
    const img = document.createElement("img");
    img.src = URL.createObjectURL(f);
    img.alt = f.name;
    box.appendChild(img);
  }
}
