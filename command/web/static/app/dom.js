// Building HTML safely: every value put into an html`` template is escaped unless it is
// itself html`` output, so a server string can never become markup.
class SafeHtml {
  constructor(text) { this.text = text; }
  toString() { return this.text; }
}

function escapeText(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function htmlValue(value) {
  if (value instanceof SafeHtml) return value.text;
  if (Array.isArray(value)) return value.map(htmlValue).join("");
  if (value === null || value === undefined || value === false) return "";
  return escapeText(value);
}

function html(strings, ...values) {
  let out = strings[0];
  values.forEach((v, i) => { out += htmlValue(v) + strings[i + 1]; });
  return new SafeHtml(out);
}

function $(selector, root = document) { return root.querySelector(selector); }
function $$(selector, root = document) { return [...root.querySelectorAll(selector)]; }

// Dates in the city's own time zone, whatever the browser's.
function fmtTime(iso, withSeconds = false) {
  if (!iso) return "";
  const opts = { timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit",
                 hour: "2-digit", minute: "2-digit", hour12: false };
  if (withSeconds) opts.second = "2-digit";
  return new Intl.DateTimeFormat(LANG === "zh" ? "zh-CN" : "en-GB", opts).format(new Date(iso));
}

// Great-circle distance in metres (enough for "how far is the case" on a phone).
function distanceM(a, b) {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad, dLon = (b.lng - a.lng) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * 6371008.8 * Math.asin(Math.sqrt(h));
}

// crypto.randomUUID exists only on https or localhost; phones on a plain-http intranet
// still get a random v4 UUID from getRandomValues.
function newClientRef() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
