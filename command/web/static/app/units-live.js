// The live patrol layer on the city map (巡查力量): a marker per unit at its last good fix,
// moved as the live bus (/api/live, Server-Sent Events) says, and the open unit alarms
// (巡查告警) in the panel with a 解除 button. Starts once map.js has drawn the map
// (body[data-ready]); stays hidden for roles that may not read units.
Object.assign(STRINGS.zh, {
  ul_title: "巡查力量", ul_alarms: "未解除告警", ul_no_alarms: "暂无告警", ul_clear: "解除",
  ul_replay: "轨迹回放", ul_fix_time: "定位时间", ul_battery: "电量", ul_no_fix: "尚无定位",
  ul_on_duty: "在岗", ul_off_duty: "不在班", ul_since: "开始于", ul_units: "巡查单元", ul_located: "已定位",
  ul_speed: "速度", ul_live_lost: "实时连接中断，正在重连…",
  ul_kind_inspector: "监督员", ul_kind_officer: "执法队员", ul_kind_vehicle: "车辆", ul_kind_team: "队伍",
  ul_alarm_out_of_area: "越界", ul_alarm_stationary: "长时间停留", ul_alarm_offline: "离线", ul_alarm_sos: "SOS",
});
Object.assign(STRINGS.en, {
  ul_title: "Patrol units", ul_alarms: "Open alarms", ul_no_alarms: "No open alarms", ul_clear: "Clear",
  ul_replay: "Track replay", ul_fix_time: "Fix time", ul_battery: "Battery", ul_no_fix: "No fix yet",
  ul_on_duty: "On duty", ul_off_duty: "Off duty", ul_since: "Since", ul_units: "units", ul_located: "located",
  ul_speed: "Speed", ul_live_lost: "Live connection lost, reconnecting…",
  ul_kind_inspector: "Inspector", ul_kind_officer: "Officer", ul_kind_vehicle: "Vehicle", ul_kind_team: "Team",
  ul_alarm_out_of_area: "Out of area", ul_alarm_stationary: "Stationary too long", ul_alarm_offline: "Offline",
  ul_alarm_sos: "SOS",
});

const unitsLive = (() => {
  const CLEAR_ROLES = new Set(["admin", "commander", "shift_lead", "operator", "dispatcher"]);
  const GLYPHS = { inspector: "巡", officer: "执", vehicle: "车", team: "队" };
  const REFETCH_MS = 1000;             // bare events and alarm changes: at most one reload a second

  const state = {
    started: false, layer: null, markers: new Map(), units: new Map(), alarms: [],
    canClear: false, source: null, timers: {}, loads: 0,
  };

  const esc = escapeHtml;                   // map.js
  const el = (id) => document.getElementById(id);

  function when(iso) {
    if (!iso) return "";
    return new Intl.DateTimeFormat(LANG === "zh" ? "zh-CN" : "en-GB", {
      timeZone: "Asia/Shanghai", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      second: "2-digit", hourCycle: "h23" }).format(new Date(iso));
  }

  function say(text) { el("units-live-msg").textContent = text || ""; }

  // ------------------------------------------------------------ markers
  function icon(p) {
    const alarms = p.open_alarms || [];
    const cls = ["unit-marker", `unit-${p.kind}`];
    if (!p.on_duty) cls.push("unit-off");
    if (alarms.length) cls.push("unit-alarm");
    if (alarms.includes("sos")) cls.push("unit-sos");
    return L.divIcon({ className: cls.join(" "), iconSize: [24, 24], iconAnchor: [12, 12],
                       html: `<span class="unit-glyph" data-unit="${Number(p.id)}">${GLYPHS[p.kind] || "·"}</span>` });
  }

  function tooltip(id) {
    const p = state.units.get(id);
    if (!p) return "";
    const alarms = (p.open_alarms || []).map((k) => t(`ul_alarm_${k}`)).join("、");
    return `<b>${esc(p.name)}</b> · ${esc(t(`ul_kind_${p.kind}`))} · ${t(p.on_duty ? "ul_on_duty" : "ul_off_duty")}` +
      `<br>${t("ul_fix_time")}: ${p.fix_time ? esc(when(p.fix_time)) : t("ul_no_fix")}` +
      (p.battery_pct != null ? `<br>${t("ul_battery")}: ${Math.round(p.battery_pct)}%` : "") +
      (p.speed_mps != null ? `<br>${t("ul_speed")}: ${(p.speed_mps * 3.6).toFixed(1)} km/h` : "") +
      (alarms ? `<br><span class="unit-tip-alarm">${esc(alarms)}</span>` : "");
  }

  function popup(id) {
    return `${tooltip(id)}<br><a class="unit-replay" href="/units/${Number(id)}/replay">${t("ul_replay")}</a>`;
  }

  function drawUnits(fc) {
    const seen = new Set();
    state.units.clear();
    for (const f of fc.features) {
      const p = f.properties;
      state.units.set(p.id, p);
      if (!f.geometry) continue;
      seen.add(p.id);
      const [lon, lat] = f.geometry.coordinates;
      let m = state.markers.get(p.id);
      if (!m) {
        m = L.marker([lat, lon], { icon: icon(p), keyboard: false })
          .bindTooltip(() => tooltip(p.id), { direction: "top", offset: [0, -10] })
          .bindPopup(() => popup(p.id)).addTo(state.layer);
        state.markers.set(p.id, m);
      } else {
        m.setLatLng([lat, lon]).setIcon(icon(p));
      }
    }
    for (const [id, m] of state.markers) {
      if (!seen.has(id)) { state.layer.removeLayer(m); state.markers.delete(id); }
    }
    const units = [...state.units.values()];
    el("units-live-stats").textContent = `${units.length} ${t("ul_units")} · ` +
      `${units.filter((u) => u.on_duty).length} ${t("ul_on_duty")} · ${state.markers.size} ${t("ul_located")}`;
  }

  function move(msg) {
    const m = state.markers.get(msg.id), p = state.units.get(msg.id);
    if (!m || !p || typeof msg.lat !== "number" || typeof msg.lon !== "number") { later("units"); return; }
    m.setLatLng([msg.lat, msg.lon]);
    p.fix_time = msg.t; p.speed_mps = msg.speed_mps;
  }

  // ------------------------------------------------------------ alarms
  function drawAlarms() {
    sosAlert.update(state.alarms);
    const list = el("unit-alarms");
    // SOS on top, then newest first.
    const rows = [...state.alarms].sort((a, b) => ((b.kind === "sos") - (a.kind === "sos")) ||
                                                 (Date.parse(b.raised_at) - Date.parse(a.raised_at)) || (b.id - a.id));
    if (!rows.length) { list.innerHTML = `<li class="hint">${t("ul_no_alarms")}</li>`; return; }
    list.innerHTML = rows.map((a) => `
      <li class="unit-alarm-item alarm-${esc(a.kind)}" data-alarm="${Number(a.id)}" data-unit="${Number(a.unit_id)}">
        <div><b class="alarm-kind">${esc(t(`ul_alarm_${a.kind}`))}</b> <a href="#" class="alarm-unit">${esc(a.unit_name)}</a></div>
        <div class="alarm-message">${esc(a.message)}</div>
        <div class="hint">${t("ul_since")} ${esc(when(a.since))}</div>
        ${state.canClear ? `<button type="button" class="alarm-clear" data-alarm="${Number(a.id)}">${t("ul_clear")}</button>` : ""}
      </li>`).join("");
  }

  async function clear(alarmId, button) {
    button.disabled = true;
    try {
      const res = await fetch(`/api/unit-alarms/${alarmId}/clear`, {
        method: "POST", headers: { ...api.authHeaders(), "Content-Type": "application/json" }, body: "{}" });
      const data = await res.json().catch(() => ({}));
      if (res.status === 401) { api._unauthorized(); return; }
      if (!res.ok) throw new ApiError(res.status, data.message || res.statusText);
      state.alarms = state.alarms.filter((a) => a.id !== alarmId);
      say("");
      drawAlarms();
      later("units");
    } catch (err) {
      button.disabled = false;
      const prefix = { 403: "err_403", 404: "err_404", 409: "err_409", 422: "err_422" }[err.status];
      say(prefix ? `${t(prefix)}${err.message}` : (err.status ? err.message : t("network_down")));
      if (err.status === 409 || err.status === 404) later("alarms");
    }
  }

  // ------------------------------------------------------------ loading and the live bus
  async function loadUnits() {
    const { data } = await api.get("/api/units/live");
    drawUnits(data);
  }

  async function loadAlarms() {
    const { data } = await api.get("/api/unit-alarms?open=true");
    state.alarms = data;
    drawAlarms();
  }

  async function reload(what) {
    try {
      if (what !== "alarms") await loadUnits();
      if (what !== "units") await loadAlarms();
      state.loads++;
    } catch (err) {
      if (err.status !== 401) say(err.message);
    }
  }

  // Throttled: many events in a burst make one reload.
  function later(what) {
    if (state.timers[what]) return;
    state.timers[what] = setTimeout(() => { state.timers[what] = null; reload(what); }, REFETCH_MS);
  }

  function listen() {
    const source = new EventSource(`/api/live?token=${encodeURIComponent(api.token)}`);
    state.source = source;
    source.addEventListener("hello", () => {
      document.body.dataset.unitsLive = "live";       // for browser tests: the stream is open
      if (state.lost) { state.lost = false; say(""); reload("all"); }
    });
    source.onmessage = (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch (_) { return; }
      if (msg.kind === "unit_position") {
        if ("lat" in msg) move(msg); else later("units");
      } else if (msg.kind === "unit_alarm") {
        later("alarms"); later("units");
      }
    };
    source.addEventListener("resync", () => reload("all"));
    source.addEventListener("bye", () => source.close());
    source.onerror = () => { state.lost = true; say(t("ul_live_lost")); };
  }

  async function start() {
    if (state.started || typeof map === "undefined" || !map) return;
    state.started = true;
    let me;
    try {
      me = (await api.get("/api/me")).data;
      state.canClear = CLEAR_ROLES.has(me.role);
      state.layer = L.layerGroup();
      await loadUnits();
    } catch (err) {
      document.body.dataset.unitsLive = "off";   // 403: this role does not see units — no layer, quietly
      return;
    }
    state.layer.addTo(map);
    el("units-live").hidden = false;
    el("unit-alarms").addEventListener("click", (e) => {
      const button = e.target.closest(".alarm-clear");
      if (button) { clear(Number(button.dataset.alarm), button); return; }
      const link = e.target.closest(".alarm-unit");
      if (link) {
        e.preventDefault();
        const m = state.markers.get(Number(link.closest("li").dataset.unit));
        if (m) { map.panTo(m.getLatLng()); m.openPopup(); }
      }
    });
    document.addEventListener("citygrid:language", () => {
      drawAlarms();
      drawUnits({ features: currentFeatures() });
    });
    await reload("alarms");
    listen();
  }

  // The picture as features again (to redraw after a language switch without a fetch).
  function currentFeatures() {
    return [...state.units.values()].map((p) => {
      const m = state.markers.get(p.id);
      const ll = m && m.getLatLng();
      return { properties: p, geometry: ll ? { type: "Point", coordinates: [ll.lng, ll.lat] } : null };
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (document.body.dataset.ready === "true") { start(); return; }
    new MutationObserver((_, obs) => {
      if (document.body.dataset.ready === "true") { obs.disconnect(); start(); }
    }).observe(document.body, { attributes: true, attributeFilter: ["data-ready"] });
  });
  document.addEventListener("citygrid:unauthorized", () => { if (state.source) state.source.close(); });

  return state;
})();
