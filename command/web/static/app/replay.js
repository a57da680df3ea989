// Track replay (轨迹回放, /units/{id}/replay): one unit's day on our own base map, the track
// simplified for the zoom, a timeline to drag, play/pause and playback speed, the stops
// (停留点), the gaps (信号中断) and the alarms raised along the way.
Object.assign(STRINGS.zh, {
  replay_title: "轨迹回放 · CityGrid Command", replay_to_map: "城市地图", replay_play: "播放", replay_pause: "暂停",
  replay_day: "日期", replay_load: "查询", replay_stops: "停留点", replay_alarms: "途中告警",
  replay_distance: "里程", replay_fixes: "定位点", replay_bad: "异常定位（未绘制）", replay_points: "绘制点",
  replay_period: "时段", replay_gaps: "信号中断", replay_none: "无", replay_empty: "该日没有定位数据",
  replay_moving: "行进中", replay_stopped: "停留", replay_silent: "信号中断", replay_before: "尚未开始",
  replay_after: "已结束", replay_speed: "速度", replay_minutes: "分钟", replay_loading: "正在加载轨迹…",
  replay_no_unit: "找不到该巡查单元，或无权查看", replay_here: "当前位置",
  alarm_out_of_area: "越界", alarm_stationary: "停留超时", alarm_offline: "离线", alarm_sos: "一键求助",
});
Object.assign(STRINGS.en, {
  replay_title: "Track replay · CityGrid Command", replay_to_map: "City map", replay_play: "Play",
  replay_pause: "Pause", replay_day: "Day", replay_load: "Show", replay_stops: "Stops",
  replay_alarms: "Alarms on the way", replay_distance: "Distance", replay_fixes: "Fixes",
  replay_bad: "Bad fixes (not drawn)", replay_points: "Points drawn", replay_period: "Period", replay_gaps: "Gaps",
  replay_none: "none", replay_empty: "No positions on this day", replay_moving: "Moving", replay_stopped: "Stopped",
  replay_silent: "No signal", replay_before: "Not started yet", replay_after: "Finished", replay_speed: "Speed",
  replay_minutes: "min", replay_loading: "Loading the track…",
  replay_no_unit: "This unit does not exist or is not yours to see", replay_here: "Position",
  alarm_out_of_area: "Out of area", alarm_stationary: "Stationary too long", alarm_offline: "Offline",
  alarm_sos: "SOS",
});

const ALARM_COLOURS = { out_of_area: "#e6a700", stationary: "#7a3cc2", offline: "#5a6673", sos: "#d00000" };
const TRAIL_EVERY_MS = 250;        // the played part of the line is redrawn at most this often
const TRACK_PAD_DEG = 0.003;       // base map around the track

// The city's own calendar day, whatever the browser's zone: YYYY-MM-DD.
function localDay(date = new Date()) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai" }).format(date);
}

function nextDay(day) {
  const [y, m, d] = day.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + 1)).toISOString().slice(0, 10);
}

function clockText(ms) {
  return new Intl.DateTimeFormat("en-GB", { timeZone: "Asia/Shanghai", hour: "2-digit", minute: "2-digit",
                                            second: "2-digit", hourCycle: "h23" }).format(new Date(ms));
}

// The API sends times (s) and coordinates (1e-6°) delta-encoded: add them up.
function decodeTrack(track) {
  const n = track.t.length;
  const t = new Float64Array(n), lat = new Float64Array(n), lng = new Float64Array(n);
  let s = 0, x = 0, y = 0;
  for (let i = 0; i < n; i++) {
    s += track.t[i]; x += track.lon[i]; y += track.lat[i];
    t[i] = s * 1000; lng[i] = x / 1e6; lat[i] = y / 1e6;
  }
  return { n, t, lat, lng, speed: track.speed };
}

// [min_lon, min_lat, max_lon, max_lat] of the decoded points.
function trackBox(p) {
  const box = [Infinity, Infinity, -Infinity, -Infinity];
  for (let i = 0; i < p.n; i++) {
    box[0] = Math.min(box[0], p.lng[i]); box[1] = Math.min(box[1], p.lat[i]);
    box[2] = Math.max(box[2], p.lng[i]); box[3] = Math.max(box[3], p.lat[i]);
  }
  return box;
}

// The last point at or before `time` (-1 when before the first).
function pointBefore(t, time) {
  let lo = -1, hi = t.length;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (t[mid] <= time) lo = mid; else hi = mid;
  }
  return lo;
}

const replay = {
  unitId: null, day: null, map: null, layers: null, marker: null, trail: null,
  data: null, pts: null, stops: [], gapAt: new Set(), start: 0, end: 0,
  now: 0, playing: false, lastFrame: null, trailAt: 0, request: 0,

  async begin() {
    this.unitId = Number($("#app").dataset.unit);
    this.day = new URLSearchParams(location.search).get("date") || localDay();
    $("#replay-form").day.value = this.day;
    $("#replay-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.pause();
      this.day = e.target.day.value;
      this.load(16, false);
    });
    $("#play").addEventListener("click", () => (this.playing ? this.pause() : this.play()));
    $("#timeline").addEventListener("input", (e) => this.seek(this.start + Number(e.target.value) * 1000));
    document.addEventListener("citygrid:language", () => { this.renderPanel(); this.show(); });

    const { data: ext } = await api.get("/api/extent");
    const b = ext.bbox || [113.33, 26.99, 113.36, 27.01];
    this.map = smallMap("replay-map", L.latLng((b[1] + b[3]) / 2, (b[0] + b[2]) / 2), 15);
    this.map.fitBounds([[b[1], b[0]], [b[3], b[2]]], { animate: false });
    this.layers = L.layerGroup().addTo(this.map);
    // Zoomed in beyond what the track was simplified for: ask for the finer one.
    this.map.on("zoomend", () => {
      const zoom = Math.round(this.map.getZoom());
      if (this.data && this.data.points && zoom > this.data.zoom) this.load(zoom, true);
    });
    await this.load(16, false);
  },

  async load(zoom, keepTime) {
    const ticket = ++this.request;
    const msg = $("#replay-msg");
    msg.textContent = t("replay_loading");
    const from = encodeURIComponent(`${this.day}T00:00:00+08:00`);
    const to = encodeURIComponent(`${nextDay(this.day)}T00:00:00+08:00`);
    let data;
    try {
      data = (await api.get(`/api/units/${this.unitId}/track?from=${from}&to=${to}&zoom=${Math.min(22, zoom)}`)).data;
    } catch (err) {
      if (ticket === this.request) msg.textContent = err.status === 404 ? t("replay_no_unit") : err.message;
      return;
    }
    if (ticket !== this.request) return;           // a newer request is on its way
    this.data = data;
    this.pts = decodeTrack(data.track);
    this.stops = data.stops.map((s) => ({ ...s, from: Date.parse(s.start), to: Date.parse(s.end) }));
    this.gapAt = new Set(data.gaps.map((g) => g.index));
    this.start = Date.parse(data.from);
    this.end = Date.parse(data.to);
    msg.textContent = data.points ? "" : t("replay_empty");
    $("#play").disabled = $("#timeline").disabled = !data.points;
    $("#timeline").max = String((this.end - this.start) / 1000);
    this.draw();
    this.renderPanel();
    if (!keepTime && data.points) {
      const box = trackBox(this.pts);
      drawBaseMap(this.map, [box[0] - TRACK_PAD_DEG, box[1] - TRACK_PAD_DEG, box[2] + TRACK_PAD_DEG, box[3] + TRACK_PAD_DEG]);
      this.map.fitBounds([[box[1], box[0]], [box[3], box[2]]], { padding: [30, 30], maxZoom: 18, animate: false });
    }
    this.seek(keepTime ? this.now : (data.points ? this.pts.t[0] : this.start));
    document.body.dataset.ready = "true";          // for browser tests and screenshots
  },

  draw() {
    const p = this.pts;
    this.layers.clearLayers();
    const ll = (i) => [p.lat[i], p.lng[i]];
    // Solid between gaps, dashed across them.
    let first = 0;
    for (const i of [...this.gapAt].sort((a, b) => a - b).concat(p.n - 1)) {
      const piece = [];
      for (let k = first; k <= i; k++) piece.push(ll(k));
      if (piece.length > 1) L.polyline(piece, { color: "#1b5e9f", weight: 3, opacity: 0.55, interactive: false }).addTo(this.layers);
      if (i < p.n - 1) L.polyline([ll(i), ll(i + 1)], { color: "#5a6673", weight: 2, dashArray: "6 6", interactive: false }).addTo(this.layers);
      first = i + 1;
    }
    this.trail = L.polyline([], { color: "#d1332e", weight: 4, opacity: 0.8, interactive: false }).addTo(this.layers);
    this.stops.forEach((s) => {
      L.circleMarker([s.lat, s.lon], { radius: 8, color: "#fff", weight: 2, fillColor: "#f08c00", fillOpacity: 0.95 })
        .bindTooltip(() => `${t("replay_stopped")} ${clockText(s.from)}–${clockText(s.to)} · ${Math.round(s.duration_s / 60)} ${t("replay_minutes")}`)
        .on("click", () => this.seek(s.from)).addTo(this.layers);
    });
    this.data.alarms.filter((a) => a.lon !== null && a.lat !== null).forEach((a) => {
      L.circleMarker([a.lat, a.lon], { radius: 7, color: "#fff", weight: 2, fillColor: ALARM_COLOURS[a.kind] || "#d00000", fillOpacity: 0.95 })
        .bindTooltip(() => `${t(`alarm_${a.kind}`)} ${clockText(Date.parse(a.raised_at))}<br>${escapeText(a.message)}`)
        .on("click", () => this.seek(Date.parse(a.raised_at))).addTo(this.layers);
    });
    this.marker = p.n ? L.circleMarker(ll(0), { radius: 9, color: "#fff", weight: 3, fillColor: "#123b63", fillOpacity: 1 })
      .bindTooltip(() => this.stateText()).addTo(this.layers) : null;
  },

  // Where the unit was at `time`, as the replay shows it.
  at(time) {
    const p = this.pts;
    if (time < p.t[0]) return { latlng: [p.lat[0], p.lng[0]], state: "before", speed: null };
    if (time >= p.t[p.n - 1]) return { latlng: [p.lat[p.n - 1], p.lng[p.n - 1]], state: "after", speed: null };
    const stop = this.stops.find((s) => s.from <= time && time <= s.to);
    if (stop) return { latlng: [stop.lat, stop.lon], state: "stopped", speed: 0 };
    const i = pointBefore(p.t, time);
    if (this.gapAt.has(i)) return { latlng: [p.lat[i], p.lng[i]], state: "silent", speed: null };
    const f = (time - p.t[i]) / (p.t[i + 1] - p.t[i]);
    return { latlng: [p.lat[i] + f * (p.lat[i + 1] - p.lat[i]), p.lng[i] + f * (p.lng[i + 1] - p.lng[i])],
             state: "moving", speed: p.speed[i] + f * (p.speed[i + 1] - p.speed[i]), index: i };
  },

  seek(time) {
    this.now = Math.min(this.end, Math.max(this.start, time));
    $("#timeline").value = String(Math.round((this.now - this.start) / 1000));
    this.show(true);
  },

  show(redrawTrail = false) {
    $("#clock").textContent = clockText(this.now);
    $("#play").textContent = t(this.playing ? "replay_pause" : "replay_play");
    if (!this.marker) { $("#now").textContent = ""; return; }
    const here = this.at(this.now);
    this.marker.setLatLng(here.latlng);
    this.marker.setStyle({ fillColor: here.state === "silent" || here.state === "before" ? "#8a96a3" : "#123b63" });
    $("#now").textContent = this.stateText(here);
    $("#now").dataset.state = here.state;
    if (redrawTrail && (!this.playing || performance.now() - this.trailAt > TRAIL_EVERY_MS)) {
      this.trailAt = performance.now();
      const p = this.pts, last = pointBefore(p.t, this.now), line = [];
      for (let k = 0; k <= last; k++) line.push([p.lat[k], p.lng[k]]);
      if (last >= 0) line.push(here.latlng);
      this.trail.setLatLngs(line);
    }
  },

  stateText(here = this.at(this.now)) {
    const speed = here.speed === null ? "" : ` · ${t("replay_speed")} ${(here.speed * 3.6).toFixed(1)} km/h`;
    return `${clockText(this.now)} · ${t(`replay_${here.state}`)}${speed}`;
  },

  play() {
    if (!this.pts || !this.pts.n) return;
    if (this.now >= this.pts.t[this.pts.n - 1]) this.seek(this.pts.t[0]);     // from the start again
    this.playing = true;
    this.lastFrame = null;
    requestAnimationFrame((ts) => this.frame(ts));
    this.show();
  },

  pause() {
    this.playing = false;
    this.show(true);
  },

  frame(ts) {
    if (!this.playing) return;
    if (this.lastFrame !== null) this.seek(this.now + (ts - this.lastFrame) * Number($("#rate").value));
    this.lastFrame = ts;
    if (this.now >= this.pts.t[this.pts.n - 1]) return this.pause();
    requestAnimationFrame((next) => this.frame(next));
  },

  renderPanel() {
    const d = this.data;
    if (!d) return;
    $("#unit-name").textContent = d.unit.name;
    const period = d.first_fix ? `${clockText(Date.parse(d.first_fix))}–${clockText(Date.parse(d.last_fix))}` : t("replay_none");
    const facts = [
      ["replay_period", period], ["replay_distance", `${(d.distance_m / 1000).toFixed(2)} km`],
      ["replay_fixes", d.fixes], ["replay_bad", d.bad_fixes], ["replay_points", d.points],
      ["replay_stops", d.stops.length], ["replay_gaps", d.gaps.length ? d.gaps.map((g) =>
        `${clockText(Date.parse(g.start))}–${clockText(Date.parse(g.end))}`).join("，") : t("replay_none")],
    ];
    $("#summary").innerHTML = html`${facts.map(([k, v]) => html`<dt>${t(k)}</dt><dd data-fact="${k}">${v}</dd>`)}`;
    $("#stop-list").innerHTML = this.stops.length ? html`${this.stops.map((s, i) => html`<li><a href="#" data-stop="${i}">
        ${clockText(s.from)}–${clockText(s.to)} · ${Math.round(s.duration_s / 60)} ${t("replay_minutes")}</a></li>`)}`
      : html`<li class="hint">${t("replay_none")}</li>`;
    $("#alarm-list").innerHTML = d.alarms.length ? html`${d.alarms.map((a, i) => html`<li><a href="#" data-alarm="${i}">
        <span class="replay-kind" style="background:${ALARM_COLOURS[a.kind] || "#d00000"}">${t(`alarm_${a.kind}`)}</span>
        ${clockText(Date.parse(a.raised_at))}</a> <span class="hint">${a.message}</span></li>`)}`
      : html`<li class="hint">${t("replay_none")}</li>`;
    $$("#stop-list a").forEach((a) => a.addEventListener("click", (e) => {
      e.preventDefault();
      this.seek(this.stops[Number(a.dataset.stop)].from);
    }));
    $$("#alarm-list a").forEach((a) => a.addEventListener("click", (e) => {
      e.preventDefault();
      this.seek(Date.parse(d.alarms[Number(a.dataset.alarm)].raised_at));
    }));
  },
};

startShell(() => replay.begin());
