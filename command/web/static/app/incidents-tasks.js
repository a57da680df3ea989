// The plan's tasks of one incident, grouped by response level: owner and post, deadline and
// overdue marking, dependencies (blocked), checklist ticks, and the actions the owner or a
// commander may take — each sending the task's `version` as last seen. For a task that needs
// resources: the nearest available ones with a dispatch button.
const incTasks = {
  suggestFor: null, suggestions: null,

  reset() { this.suggestFor = null; this.suggestions = null; },

  render(inc) {
    const box = $("#d-tasks");
    const tasks = inc.tasks || [];
    if (!tasks.length) { box.innerHTML = html`<p class="hint">${t("d_no_tasks")}</p>`.text; return; }
    const titles = new Map(tasks.map((task) => [task.step_id, task]));
    // Ⅳ first: a response starts at Ⅳ and upgrades add the higher levels after it.
    const levels = [...INC_LEVELS].reverse().filter((lv) => tasks.some((task) => task.level === lv));
    box.innerHTML = levels.map((lv) => html`<div class="task-level" data-level="${lv}">
      <h4>${levelBadge(lv)} ${t("d_response")}</h4>
      <ul class="tasks">${tasks.filter((task) => task.level === lv).map((task) => this.row(inc, task, titles))}</ul></div>`.text).join("");
  },

  row(inc, task, titles) {
    const late = isOverdue(task);
    const deps = (task.depends_on || []).map((d) => {
      const dep = titles.get(d);
      const finished = dep && ["done", "waived"].includes(dep.status);
      return html`<span class="dep ${finished ? "met" : "unmet"}" data-step="${d}">${dep ? dep.title : d}</span>`;
    });
    const needs = (task.resources || []).map((r) => `${this.typeName(r.type)} × ${r.count}`).join("、");
    return html`<li class="task st-${task.status} ${late ? "overdue" : ""}" data-task="${task.id}" data-step="${task.step_id}"
        data-status="${task.status}" data-version="${task.version}">
      <div class="task-head"><b class="task-title">${task.title}</b>
        <span class="task-st">${t(`ts_${task.status}`)}</span>
        <span class="tag ${task.mandatory ? "must" : ""}">${t(task.mandatory ? "d_mandatory" : "d_optional")}</span>
        ${late ? html`<span class="tag late">${t("d_overdue")}</span>` : ""}
        ${task.escalated_at ? html`<span class="tag late">${t("d_escalated")}</span>` : ""}</div>
      <div class="task-meta hint">${t("d_owner")}: ${task.owner || t("d_nobody")}${task.post ? ` · ${t("d_post")}: ${task.post}` : ""}
        · ${t("d_due")}: <span class="${late ? "late" : ""}">${fmtTime(task.due_at)}</span></div>
      ${deps.length ? html`<div class="task-deps">${t(task.status === "blocked" ? "d_waits_for" : "d_depends_on")}: ${deps}</div>` : ""}
      ${needs ? html`<div class="task-needs">${t("d_needs")}: ${needs}</div>` : ""}
      ${this.checklist(inc, task)}
      ${task.waived_reason ? html`<div class="task-waived">${t("d_waived")}: ${task.waived_reason} (${task.waived_by})</div>` : ""}
      ${task.note ? html`<div class="task-note hint">${task.note}</div>` : ""}
      ${this.actions(inc, task)}
      <div class="suggest" id="suggest-${task.id}">${this.suggestFor === task.id ? this.suggestHtml(task) : ""}</div>
    </li>`;
  },

  typeName(code) {
    const type = incPage.catalog && incPage.catalog.resource_types[code];
    return !type ? code : LANG === "en" ? type.name_en : type.name;
  },

  mayWork(inc, task) {
    return inc.status !== "closed" && (inc.can_command || task.owner_user_id === api.user.id);
  },

  checklist(inc, task) {
    if (!task.checklist || !task.checklist.length) return "";
    const enabled = this.mayWork(inc, task) && TASK_OPEN.has(task.status);
    return html`<ul class="checklist">${task.checklist.map((c, i) => html`<li><label>
      <input type="checkbox" data-check="${i}" ${c.done ? html`checked` : ""} ${enabled ? "" : html`disabled`}> ${c.item}</label></li>`)}</ul>`;
  },

  allowedActions(inc, task) {
    if (!this.mayWork(inc, task)) return [];
    const cmd = inc.can_command;
    const byStatus = {
      blocked: cmd ? ["waive", "reassign"] : [],
      open: ["start", "done", ...(cmd ? ["waive", "reassign"] : [])],
      in_progress: ["done", ...(cmd ? ["waive", "reassign"] : [])],
      done: cmd ? ["reopen"] : [], waived: cmd ? ["reopen"] : [], cancelled: [],
    };
    return byStatus[task.status] || [];
  },

  actions(inc, task) {
    const allowed = this.allowedActions(inc, task);
    const suggest = incCan("dispatch") && inc.status !== "closed" && TASK_OPEN.has(task.status) && (task.resources || []).length;
    if (!allowed.length && !suggest) return "";
    const holders = incPage.onDuty.filter((h) => h.user_id !== task.owner_user_id);
    return html`<div class="task-actions">
      ${allowed.filter((a) => a !== "reassign").map((a) => html`<button type="button" data-task-action="${a}">${t(`ta_${a}`)}</button>`)}
      ${allowed.length ? html`<input name="task_note" placeholder="${t("d_task_note")}" maxlength="2000">` : ""}
      ${allowed.includes("reassign") && holders.length ? html`<select name="owner" aria-label="${t("d_reassign_to")}">
          ${holders.map((h) => html`<option value="${h.user_id}">${h.display_name}（${h.post}）</option>`)}</select>
        <button type="button" data-task-action="reassign">${t("ta_reassign")}</button>` : ""}
      ${suggest ? html`<button type="button" class="link" data-suggest="${task.id}">${t(this.suggestFor === task.id ? "d_hide_suggest" : "d_suggest")}</button>` : ""}
    </div>`;
  },

  // ------------------------------------------------------------ suggestions and dispatch
  suggestHtml(task) {
    if (!this.suggestions) return html`<p class="hint">${t("in_loading")}</p>`;
    return html`${this.suggestions.map((need) => {
      const kind = incPage.catalog.resource_types[need.type]?.kind;
      const left = Math.max(1, need.count - need.sent);
      return html`<div class="need" data-type="${need.type}">
        <b>${this.typeName(need.type)}</b> ${t("d_need")} ${need.count}${LANG === "en" ? "" : need.unit}，${t("d_sent")} ${need.sent}
        ${need.nearest.length ? html`<ol class="nearest">${need.nearest.map((r) => html`<li data-resource="${r.id}">
            ${r.name} · ${Math.round(r.distance_m)} m · ${t("d_eta")} ${r.eta_min} ${t("d_min")}
            ${kind === "supply" ? html` · ${r.quantity}${LANG === "en" ? "" : need.unit}
              <input type="number" name="qty" min="1" max="${r.quantity}" value="${Math.min(left, r.quantity)}" aria-label="${t("d_quantity")}">` : ""}
            <button type="button" data-dispatch="${r.id}" data-task="${task.id}">${t("d_dispatch")}</button></li>`)}</ol>`
          : html`<p class="hint">${t("d_no_resources")}</p>`}</div>`;
    })}`;
  },

  async loadSuggestions(incId, taskId) {
    try {
      this.suggestions = (await api.get(`/api/incidents/${incId}/suggestions?task_id=${taskId}`)).data;
    } catch (err) {
      this.suggestions = [];
      incSay("task-msg", explainError(err));
    }
    const box = document.getElementById(`suggest-${taskId}`);
    const task = (incDetail.inc.tasks || []).find((x) => x.id === taskId);
    if (box && task && this.suggestFor === taskId) box.innerHTML = this.suggestHtml(task).text;
  },

  // After a reload: the open suggestions follow what is still available.
  async refreshSuggestions(inc) {
    if (this.suggestFor === null) return;
    const task = (inc.tasks || []).find((x) => x.id === this.suggestFor);
    if (!task || !TASK_OPEN.has(task.status) || inc.status === "closed") { this.reset(); return; }
    await this.loadSuggestions(inc.id, task.id);
  },

  async toggleSuggestions(taskId) {
    if (this.suggestFor === taskId) {
      this.reset();
      incTasks.render(incDetail.inc);
      return;
    }
    this.suggestFor = taskId;
    this.suggestions = null;
    incTasks.render(incDetail.inc);
    await this.loadSuggestions(incDetail.id, taskId);
  },

  async dispatch(button) {
    const row = button.closest("li[data-resource]");
    const qty = row.querySelector("[name=qty]");
    const body = { resource_id: Number(button.dataset.dispatch), task_id: Number(button.dataset.task),
                   quantity: qty ? Number(qty.value) : 1 };
    button.disabled = true;
    const ok = await incDetail.act("order-msg", () => api.json("POST", `/api/incidents/${incDetail.id}/dispatch`, body),
                                   () => undefined);
    if (!ok) button.disabled = false;
  },

  // ------------------------------------------------------------ task actions
  taskOf(el) {
    const li = el.closest("li[data-task]");
    return li && (incDetail.inc.tasks || []).find((x) => x.id === Number(li.dataset.task));
  },

  versionOf(taskId) {
    return () => {
      const task = incDetail.inc && (incDetail.inc.tasks || []).find((x) => x.id === taskId);
      return task && task.version;
    };
  },

  async onClick(button) {
    if (button.dataset.suggest) return this.toggleSuggestions(Number(button.dataset.suggest));
    if (button.dataset.dispatch) return this.dispatch(button);
    const action = button.dataset.taskAction;
    const task = this.taskOf(button);
    if (!action || !task) return undefined;
    const li = button.closest("li[data-task]");
    const note = li.querySelector("[name=task_note]");
    const body = { note: note ? note.value.trim() : "", version: task.version };
    if (action === "reassign") body.owner_user_id = Number(li.querySelector("[name=owner]").value);
    button.disabled = true;
    const ok = await incDetail.act("task-msg", () => api.json("POST", `/api/incident-tasks/${task.id}/${action}`, body),
                                   this.versionOf(task.id));
    if (!ok) button.disabled = false;
    else $$(`#d-tasks li[data-task="${task.id}"] [name=task_note]`).forEach((el) => { el.value = ""; });   // said and done
    return ok;
  },

  async onCheck(box) {
    const task = this.taskOf(box);
    if (!task) return;
    const li = box.closest("li[data-task]");
    const ticks = $$("input[data-check]", li).map((c) => c.checked);
    const body = { checklist: ticks, version: task.version };
    const ok = await incDetail.act("task-msg", async () => {
      const done = await api.json("POST", `/api/incident-tasks/${task.id}/check`, body);
      task.version = done.version;               // a quick second tick sends the version this one made
    }, this.versionOf(task.id));
    if (!ok) await incDetail.reload();           // the boxes show what the server holds
  },
};
