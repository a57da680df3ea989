// A thin client for our API: bearer token in sessionStorage, JSON errors surfaced as text.

// An answer the server gave with an error status; `status` lets pages tell a refusal
// (403/409/422: show the message) from a transient failure (5xx: try again later).
class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const api = {
  token: sessionStorage.getItem("citygrid.token"),
  user: null,

  async login(username, password) {
    const body = new URLSearchParams({ username, password });
    const res = await fetch("/api/auth/token", { method: "POST", body });
    const data = await res.json();
    if (!res.ok) throw new ApiError(res.status, data.message || res.statusText);
    this.token = data.access_token;
    sessionStorage.setItem("citygrid.token", this.token);
    this.user = data.user;
    return data.user;
  },

  logout() { this.token = null; this.user = null; sessionStorage.removeItem("citygrid.token"); },

  // The session ended (expired token, disabled account): pages may ask for a new login.
  _unauthorized() {
    this.logout();
    document.dispatchEvent(new Event("citygrid:unauthorized"));
  },

  authHeaders() { return this.token ? { Authorization: `Bearer ${this.token}` } : {}; },

  async get(path) {
    const res = await fetch(path, { headers: this.authHeaders() });
    if (res.status === 401) { this._unauthorized(); throw new ApiError(401, "401"); }
    const data = await res.json();
    if (!res.ok) throw new ApiError(res.status, data.message || res.statusText);
    return { data, next: res.headers.get("X-Next-After") };
  },

  // POST a FormData (multipart: photos) or URLSearchParams; the JSON answer, or an ApiError.
  // A network failure stays a TypeError, so callers can queue and retry it.
  async post(path, body) {
    const res = await fetch(path, { method: "POST", headers: this.authHeaders(), body });
    if (res.status === 204) return null;
    const data = await res.json().catch(() => ({}));
    if (res.status === 401 && path !== "/api/auth/token") this._unauthorized();
    if (!res.ok) throw new ApiError(res.status, data.message || res.statusText);
    return data;
  },

  // A JSON request (POST/PUT/DELETE…); the JSON answer, or an ApiError with the server's message.
  async json(method, path, body) {
    const res = await fetch(path, { method, headers: { ...this.authHeaders(), "Content-Type": "application/json" },
                                    body: body === undefined ? undefined : JSON.stringify(body) });
    if (res.status === 204) return null;
    const data = await res.json().catch(() => ({}));
    if (res.status === 401) { this._unauthorized(); throw new ApiError(401, "401"); }
    if (!res.ok) throw new ApiError(res.status, data.message || res.statusText);
    return data;
  },

  // Photos need the bearer header, so <img src> cannot fetch them: load as a blob URL.
  async blobUrl(path) {
    const res = await fetch(path, { headers: this.authHeaders() });
    if (!res.ok) throw new ApiError(res.status, res.statusText);
    return URL.createObjectURL(await res.blob());
  },

  // Follow keyset pages until the collection is complete.
  async allFeatures(path) {
    const features = [];
    let after = null;
    do {
      const sep = path.includes("?") ? "&" : "?";
      const page = await this.get(after ? `${path}${sep}after=${after}` : path);
      features.push(...page.data.features);
      after = page.next;
    } while (after);
    return { type: "FeatureCollection", features };
  },
};
