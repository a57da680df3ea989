// The telemetry chart of the picked device (uPlot, vendored): one numeric or boolean field
// of its type over the last hour, day or week. The server answers raw readings, or buckets
// (hours, or N seconds) with the average as the value and min/max beside it, drawn as a band.
const CHART_WINDOWS = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3 };
const CHART_HEIGHT = 200;

// A time tick in the city's clock: the hour within a day, the day and hour across a week.
function axisTime(seconds, window) {
  const opts = { timeZone: "Asia/Shanghai", hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  if (window === "7d") Object.assign(opts, { month: "2-digit", day: "2-digit" });
  return new Intl.DateTimeFormat(LANG === "zh" ? "zh-CN" : "en-GB", opts).format(new Date(seconds * 1000));
}

const deviceChart = {
  device: null, field: null, window: "24h", answer: null, plot: null, loading: 0,

  // Fields that can be drawn: numbers first (they say more), then booleans as 0/1.
  fields(typeCode) {
    const all = Object.entries(deviceTypes.fields(typeCode));
    return [...all.filter(([, f]) => f.type === "number"), ...all.filter(([, f]) => f.type === "boolean")];
  },

  // A newly picked device: its first chartable field, the window kept.
  reset(device) {
    this.device = device;
    const fields = this.fields(device.type);
    this.field = fields.length ? fields[0][0] : null;
    this.answer = null;
  },

  destroy() {
    if (this.plot) { this.plot.destroy(); this.plot = null; }
  },

  render() {
    const box = $("#dv-chart-box");
    if (!box) return;
    this.destroy();
    const fields = this.fields(this.device.type);
    if (!fields.length) { box.innerHTML = html`<p class="hint">${t("dv_no_chart")}</p>`; return; }
    box.innerHTML = html`<div class="dv-chart-controls">
        <label class="check">${t("dv_field")} <select id="dv-chart-field">${fields.map(([f, spec]) =>
          html`<option value="${f}" ${f === this.field ? html`selected` : ""}>${fieldLabel(f, spec)}</option>`)}</select></label>
        <span class="dv-windows" role="group">${Object.keys(CHART_WINDOWS).map((w) =>
          html`<button type="button" data-window="${w}" class="${w === this.window ? "active" : ""}">${t(`dv_w_${w}`)}</button>`)}</span>
      </div>
      <div id="dv-chart" class="dv-chart"></div>
      <p id="dv-chart-summary" class="hint" role="status"></p>`;
    $("#dv-chart-field").addEventListener("change", (e) => { this.field = e.target.value; this.load(); });
    $$(".dv-windows button", box).forEach((b) => b.addEventListener("click", () => {
      this.window = b.dataset.window;
      $$(".dv-windows button", box).forEach((x) => x.classList.toggle("active", x === b));
      this.load();
    }));
    if (this.answer) this.draw();
  },

  async load() {
    if (!this.device || !this.field || !$("#dv-chart")) return;
    const ticket = ++this.loading;                     // a slower earlier answer must not win
    const until = new Date(), since = new Date(until.getTime() - CHART_WINDOWS[this.window]);
    const params = new URLSearchParams({ field: this.field, since: since.toISOString(), until: until.toISOString(),
                                         resolution: "auto" });
    const summary = $("#dv-chart-summary");
    try {
      const { data } = await api.get(`/api/devices/${encodeURIComponent(this.device.id)}/telemetry?${params}`);
      if (ticket !== this.loading) return;
      this.answer = data;
    } catch (err) {
      if (ticket !== this.loading) return;
      this.answer = null;
      this.destroy();
      if (summary) summary.textContent = explainError(err);
      return;
    }
    this.draw();
  },

  // [x seconds], [value], and for buckets [min], [max]; booleans as 0/1, a missing value a gap.
  series() {
    const num = (v) => (typeof v === "boolean" ? Number(v) : typeof v === "number" ? v : null);
    const points = this.answer.points;
    const xs = points.map((p) => Date.parse(p.ts) / 1000);
    const ys = points.map((p) => num((p.values || {})[this.field]));
    if (this.answer.resolution === "raw") return [xs, ys];
    return [xs, ys, points.map((p) => num((p.min || {})[this.field])), points.map((p) => num((p.max || {})[this.field]))];
  },

  draw() {
    const box = $("#dv-chart"), summary = $("#dv-chart-summary");
    if (!box || !this.answer) return;
    this.destroy();
    const spec = deviceTypes.fields(this.device.type)[this.field] || {};
    const data = this.series();
    const n = data[0].length;
    box.dataset.points = String(n);
    box.dataset.resolution = this.answer.resolution;
    const last = data[1].reduceRight((found, v, i) => (found || v === null ? found : { v, i }), null);
    const res = this.answer.resolution;
    const kind = res === "raw" ? t("dv_raw") : res === "hour" ? t("dv_hourly") : t("dv_bucket").replace("{n}", parseInt(res, 10));
    const points = LANG === "en" && n === 1 ? "point" : t("dv_points");
    summary.innerHTML = n ? html`<b class="dv-chart-count">${n}</b> ${points} · ${kind}${last ? html` · ${t("dv_last_value")}
        <b class="dv-chart-last">${fmtValue(spec.type === "boolean" ? last.v === 1 : last.v, spec)}</b>
        (${fmtTime(this.answer.points[last.i].ts, true)})` : ""}` : html`${t("dv_no_data")}`;
    box.hidden = !n;
    if (!n) return;
    this.plot = new uPlot(this.options(spec, data.length > 2, n), data, box);
  },

  options(spec, banded, n) {
    const boolean = spec.type === "boolean";
    const label = fieldLabel(this.field, spec);
    const series = [{}, {
      label, stroke: "#1b5e9f", width: 2, spanGaps: false,
      paths: boolean ? uPlot.paths.stepped({ align: 1 }) : undefined,
      points: { show: n <= 60, size: 5 },
    }];
    if (banded) {
      series.push({ label: "min", stroke: "rgba(27,94,159,0.35)", width: 1, dash: [4, 4], points: { show: false } },
                  { label: "max", stroke: "rgba(27,94,159,0.35)", width: 1, dash: [4, 4], points: { show: false } });
    }
    return {
      width: Math.max(280, $("#dv-chart").clientWidth || 400), height: CHART_HEIGHT,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Asia/Shanghai"),   // the city's clock, like fmtTime
      legend: { show: false },
      // The whole window asked for, however few readings fell in it.
      scales: { x: { time: true, range: () => [Date.parse(this.answer.since) / 1000, Date.parse(this.answer.until) / 1000] },
                y: boolean ? { range: [-0.1, 1.1] } : {} },
      axes: [{ space: this.window === "7d" ? 90 : 60, values: (u, ticks) => ticks.map((s) => axisTime(s, this.window)) }, {
        size: 56,
        values: (u, ticks) => ticks.map((v) => (boolean ? (v === 1 ? t("dv_yes") : v === 0 ? t("dv_no") : "")
                                                : `${v}${spec.unit ? ` ${spec.unit}` : ""}`)),
        splits: boolean ? () => [0, 1] : undefined,
      }],
      series,
    };
  },
};

window.addEventListener("resize", () => {
  const box = $("#dv-chart");
  if (deviceChart.plot && box) deviceChart.plot.setSize({ width: Math.max(280, box.clientWidth), height: CHART_HEIGHT });
});
