// The duty roster page (值班表, /duty): who is on duty at every post now, the week's roster
// as a posts × days grid (city time, Beijing), a form for shift leads to add a shift, and the
// hand-over notes (交接班) of a post with a form to write one and a button to acknowledge.
Object.assign(STRINGS.zh, {
  duty_title: "值班表 · CityGrid Command", du_now: "当前值班", du_post: "岗位", du_holder: "值班人",
  du_until: "值班至", du_next: "下一班", du_nobody: "无人值班", du_roster: "排班表", du_add_shift: "新增排班",
  du_username: "值班人用户名", du_starts: "开始", du_ends: "结束", du_save: "保存",
  du_tz_hint: "时间为北京时间，一班最长 24 小时", du_saved: "已保存排班", du_handovers: "交接班记录",
  du_note: "交接内容", du_hand_over: "提交交接", du_ack: "确认接班", du_acked: "已确认", du_unacked: "待确认",
  du_no_handovers: "暂无交接记录", du_to: "交给", du_no_posts: "尚未设置值守岗位", du_handed_over: "已提交交接",
  du_days: "周一,周二,周三,周四,周五,周六,周日",
});
Object.assign(STRINGS.en, {
  duty_title: "Duty roster · CityGrid Command", du_now: "On duty now", du_post: "Post", du_holder: "On duty",
  du_until: "Until", du_next: "Next", du_nobody: "Nobody on duty", du_roster: "Roster", du_add_shift: "Add a shift",
  du_username: "User name", du_starts: "Starts", du_ends: "Ends", du_save: "Save",
  du_tz_hint: "Beijing time; a shift is at most 24 hours", du_saved: "Shift saved", du_handovers: "Hand-overs",
  du_note: "Hand-over note", du_hand_over: "Hand over", du_ack: "Acknowledge", du_acked: "Acknowledged",
  du_unacked: "Not yet acknowledged", du_no_handovers: "No hand-overs yet", du_to: "to",
  du_no_posts: "No duty posts yet", du_handed_over: "Hand-over sent", du_days: "Mon,Tue,Wed,Thu,Fri,Sat,Sun",
});

const dutyPage = (() => {
  const CITY_OFFSET_MS = 8 * 3600e3;          // Beijing time, no daylight saving
  const DAY_MS = 24 * 3600e3;
  const MANAGERS = new Set(["admin", "shift_lead"]);
  const state = { user: null, weekStart: 0, posts: [], now: [], shifts: [], handovers: [] };

  // ------------------------------------------------------------ city time
  const pad = (n) => String(n).padStart(2, "0");
  function cityParts(ms) {
    const d = new Date(ms + CITY_OFFSET_MS);
    return { y: d.getUTCFullYear(), m: d.getUTCMonth() + 1, d: d.getUTCDate(), h: d.getUTCHours(),
             min: d.getUTCMinutes(), dow: (d.getUTCDay() + 6) % 7 };
  }
  const dayKey = (ms) => { const p = cityParts(ms); return `${p.y}-${pad(p.m)}-${pad(p.d)}`; };
  const hhmm = (ms) => { const p = cityParts(ms); return `${pad(p.h)}:${pad(p.min)}`; };
  function isoCity(ms) {
    const p = cityParts(ms);
    return `${p.y}-${pad(p.m)}-${pad(p.d)}T${pad(p.h)}:${pad(p.min)}:00+08:00`;
  }
  function mondayOf(ms) {
    const p = cityParts(ms);
    return Date.UTC(p.y, p.m - 1, p.d - p.dow) - CITY_OFFSET_MS;
  }

  // ------------------------------------------------------------ talking to the API
  function send(method, path, body) { return api.json(method, path, body); }

  // ------------------------------------------------------------ on duty now
  function drawNow() {
    const body = $("#duty-now tbody");
    if (!state.now.length) { body.innerHTML = html`<tr><td colspan="4" class="hint">${t("du_no_posts")}</td></tr>`.text; return; }
    body.innerHTML = state.now.map((p) => html`<tr data-post="${p.post_id}">
      <td>${p.post}</td>
      <td class="holder${p.holder ? "" : " nobody"}">${p.holder ? p.holder.display_name : t("du_nobody")}</td>
      <td class="until">${p.until ? fmtTime(p.until) : ""}</td>
      <td class="next">${p.next ? html`${p.next.display_name} <span class="hint">${fmtTime(p.next.starts_at)}</span>` : ""}</td>
    </tr>`.text).join("");
  }

  // ------------------------------------------------------------ the week grid
  function drawWeek() {
    const days = [...Array(7).keys()].map((i) => state.weekStart + i * DAY_MS);
    const names = t("du_days").split(",");
    const today = dayKey(Date.now());
    const last = cityParts(days[6]);
    $("#week-label").textContent = `${dayKey(days[0])} – ${pad(last.m)}-${pad(last.d)}`;
    $("#duty-grid thead").innerHTML = html`<tr><th>${t("du_post")}</th>${days.map((d, i) => {
      const p = cityParts(d);
      return html`<th class="${dayKey(d) === today ? "today" : ""}">${names[i]} ${pad(p.m)}-${pad(p.d)}</th>`;
    })}</tr>`.text;
    $("#duty-grid tbody").innerHTML = state.posts.map((post) => html`<tr data-post="${post.id}"><th>${post.name}</th>${
      days.map((d) => {
        const inDay = state.shifts.filter((s) => s.post_id === post.id &&
          Date.parse(s.starts_at) < d + DAY_MS && Date.parse(s.ends_at) > d);
        return html`<td data-post="${post.id}" data-day="${dayKey(d)}" class="${dayKey(d) === today ? "today" : ""}">${
          inDay.map((s) => html`<span class="shift" data-shift="${s.id}">${s.display_name}<span class="time">${
            hhmm(Date.parse(s.starts_at))}–${hhmm(Date.parse(s.ends_at))}</span></span>`)}</td>`;
      })}</tr>`.text).join("");
  }

  // ------------------------------------------------------------ hand-overs
  function drawHandovers() {
    const list = $("#handover-list");
    if (!state.handovers.length) { list.innerHTML = html`<li class="hint">${t("du_no_handovers")}</li>`.text; return; }
    const postId = Number($("#handover-post").value);
    const holder = state.now.find((p) => p.post_id === postId)?.holder;
    list.innerHTML = state.handovers.map((h) => {
      const mine = h.to_user_id === state.user.id || (h.to_user_id === null && holder?.user_id === state.user.id);
      const status = h.acknowledged_at ? html`${t("du_acked")} ${fmtTime(h.acknowledged_at)}`
        : mine ? html`<button type="button" class="ack" data-handover="${h.id}">${t("du_ack")}</button>` : t("du_unacked");
      return html`<li data-handover="${h.id}" class="${h.acknowledged_at ? "acked" : ""}">
        <div><b>${h.from_display_name}</b> ${t("du_to")} <b>${h.to_display_name || "—"}</b>
          <span class="hint">${fmtTime(h.at)}</span></div>
        <div class="note">${h.note}</div><div class="status">${status}</div></li>`.text;
    }).join("");
  }

  async function loadHandovers() {
    const post = $("#handover-post").value;
    if (!post) { state.handovers = []; drawHandovers(); return; }
    try {
      state.handovers = (await api.get(`/api/duty/handovers?post=${encodeURIComponent(post)}`)).data;
      $("#handover-msg").textContent = "";
    } catch (err) {
      state.handovers = [];
      $("#handover-msg").textContent = explainError(err);
    }
    drawHandovers();
  }

  // ------------------------------------------------------------ loading
  async function load() {
    const since = isoCity(state.weekStart), until = isoCity(state.weekStart + 7 * DAY_MS);
    const [posts, now, shifts] = await Promise.all([
      api.get("/api/duty/posts"), api.get("/api/duty/now"),
      api.get(`/api/duty/roster?since=${encodeURIComponent(since)}&until=${encodeURIComponent(until)}`)]);
    state.posts = posts.data; state.now = now.data; state.shifts = shifts.data;
    fillPostSelects();
    drawNow(); drawWeek();
    await loadHandovers();
    document.body.dataset.duty = "ready";
  }

  function fillPostSelects() {
    for (const select of [$("#shift-form").post, $("#handover-post")]) {
      const chosen = select.value;
      select.innerHTML = state.posts.map((p) => html`<option value="${p.id}">${p.name}</option>`.text).join("");
      if (chosen && state.posts.some((p) => String(p.id) === chosen)) select.value = chosen;
    }
    // First load: the hand-over list opens on the post I hold now, if any.
    const held = state.now.find((p) => p.holder?.user_id === state.user.id);
    if (held && !$("#handover-post").dataset.touched) $("#handover-post").value = String(held.post_id);
  }

  async function shiftWeek(weeks) {
    state.weekStart = mondayOf(state.weekStart + weeks * 7 * DAY_MS + DAY_MS / 2);
    document.body.dataset.duty = "loading";
    await load();
  }

  async function addShift(e) {
    e.preventDefault();
    const form = e.target, msg = $("#shift-msg");
    msg.className = "error";
    try {
      await send("POST", "/api/duty/shifts", {
        post: Number(form.post.value), username: form.username.value.trim(),
        starts_at: `${form.starts_at.value}:00+08:00`, ends_at: `${form.ends_at.value}:00+08:00` });
      msg.className = "hint";
      msg.textContent = t("du_saved");
      await load();
    } catch (err) {
      msg.textContent = explainError(err);
    }
  }

  async function handOver(e) {
    e.preventDefault();
    const form = e.target, msg = $("#handover-msg");
    try {
      await send("POST", "/api/duty/handovers", { post: Number($("#handover-post").value), note: form.note.value });
      form.reset();
      await loadHandovers();
      msg.className = "hint";
      msg.textContent = t("du_handed_over");
    } catch (err) {
      msg.className = "error";
      msg.textContent = explainError(err);
    }
  }

  async function acknowledge(button) {
    button.disabled = true;
    try {
      await send("POST", `/api/duty/handovers/${Number(button.dataset.handover)}/ack`);
      await loadHandovers();
    } catch (err) {
      button.disabled = false;
      $("#handover-msg").textContent = explainError(err);
    }
  }

  // Someone else's change to the roster (the live bus), or the clock passing a shift change:
  // load again, at most once a second.
  function listen() {
    const later = throttled(() => load().catch((err) => { $("#duty-live-msg").textContent = explainError(err); }));
    listenLive((msg) => { if (msg.kind === "duty") later(); }, later,
               (text) => { $("#duty-live-msg").textContent = text; });
    setInterval(later, 60e3);
  }

  async function start(user) {
    state.user = user;
    state.weekStart = mondayOf(Date.now());
    $("#shift-form").hidden = !MANAGERS.has(user.role);
    $("#shift-form").addEventListener("submit", addShift);
    $("#handover-form").addEventListener("submit", handOver);
    $("#handover-post").addEventListener("change", (e) => { e.target.dataset.touched = "1"; loadHandovers(); });
    $("#handover-list").addEventListener("click", (e) => { const b = e.target.closest("button.ack"); if (b) acknowledge(b); });
    $("#week-prev").addEventListener("click", () => shiftWeek(-1));
    $("#week-next").addEventListener("click", () => shiftWeek(1));
    document.addEventListener("citygrid:language", () => { drawNow(); drawWeek(); drawHandovers(); });
    try {
      await load();
    } catch (err) {
      $("#shift-msg").textContent = explainError(err);
    }
    listen();
  }

  return { start, load };
})();

startShell((user) => dutyPage.start(user));
