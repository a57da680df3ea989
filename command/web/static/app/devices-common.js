// What the device page (/devices) and the alarm page (/alarms) share: the type catalog and
// its names in either language, values with their units, JSON posts, and the live bus.

// Mirrors of command/auth.py (device.command, device.alarm): the forms are shown to these
// roles only; the server still decides, and a refusal is shown as it says.
const DEVICE_COMMAND_ROLES = new Set(["admin", "commander", "shift_lead", "operator", "dispatcher", "department"]);
const DEVICE_ALARM_ROLES = new Set(["admin", "commander", "shift_lead", "operator", "dispatcher", "department"]);
const SEVERITIES = ["critical", "major", "minor", "warning"];

const deviceTypes = {
  byCode: new Map(),

  async load() {
    const { data } = await api.get("/api/device-types");
    this.byCode = new Map(data.map((type) => [type.code, type]));
    return data;
  },

  name(code) {
    const type = this.byCode.get(code);
    if (!type) return code;
    return LANG === "en" ? type.name_en || type.name : type.name;
  },

  fields(code) { return (this.byCode.get(code) || {}).fields || {}; },
  commands(code) { return (this.byCode.get(code) || {}).commands || {}; },
};

function fieldLabel(field, spec) { return named("field", field, spec && spec.label); }
function ruleName(ruleId, serverName) { return named("rule", ruleId, serverName); }
function commandLabel(name, spec) { return named("command", name, spec && spec.label); }
function severityName(code) { return named("severity", code); }
function alarmStatusName(code) { return named("alarm_status", code); }

function severityBadge(code) {
  return html`<span class="badge sev sev-${code}">${severityName(code)}</span>`;
}

function alarmStatusBadge(code) {
  return html`<span class="badge alarm-status st-${code}">${alarmStatusName(code)}</span>`;
}

// A reading as people read it: yes/no for booleans, at most two decimals, the field's unit.
function fmtValue(value, spec) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "boolean") return value ? t("dv_yes") : t("dv_no");
  if (typeof value !== "number") return String(value);
  const text = Number.isInteger(value) ? String(value) : String(Math.round(value * 100) / 100);
  const unit = spec && spec.unit;
  return unit ? `${text}${/^[°%]/.test(unit) ? "" : " "}${unit}` : text;
}

// The values of a reading in the type's field order (fields the type no longer has last).
function valueRows(typeCode, values) {
  const fields = deviceTypes.fields(typeCode);
  const names = [...Object.keys(fields).filter((f) => f in (values || {})),
                 ...Object.keys(values || {}).filter((f) => !(f in fields))];
  return names.map((f) => ({ field: f, label: fieldLabel(f, fields[f]), text: fmtValue(values[f], fields[f]) }));
}

function valuesLine(typeCode, values) {
  return valueRows(typeCode, values).map((r) => `${r.label} ${r.text}`).join(" · ");
}

// api.post sends forms; these endpoints take JSON.
function postJson(path, body) { return api.json("POST", path, body ?? {}); }

// The live bus (/api/live, Server-Sent Events): `onMessage(msg)` for each {"kind", "id", …},
// `onResync()` when events were lost (fell behind, or the server reconnected).
// body[data-live] says "live" once the stream is open (for browser tests).
function listenLive(onMessage, onResync, say) {
  const source = new EventSource(`/api/live?token=${encodeURIComponent(api.token)}`);
  let lost = false;
  source.addEventListener("hello", () => {
    document.body.dataset.live = "live";
    if (lost) { lost = false; say(""); onResync(); }
  });
  source.onmessage = (e) => {
    let msg;
    try { msg = JSON.parse(e.data); } catch (_) { return; }
    if (msg && typeof msg.kind === "string") onMessage(msg);
  };
  source.addEventListener("resync", () => onResync());
  source.addEventListener("bye", () => source.close());
  source.onerror = () => { lost = true; document.body.dataset.live = "lost"; say(t("dv_live_lost")); };
  document.addEventListener("citygrid:unauthorized", () => source.close());
  return source;
}

// Many events in a burst make one call, at most every `ms`.
function throttled(fn, ms = 1000) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; fn(); }, ms);
  };
}
