// A thin client for our API: bearer token in sessionStorage, JSON errors surfaced as text.
const api = {
  token: sessionStorage.getItem("citygrid.token"),

  async login(username, password) {
    const body = new URLSearchParams({ username, password });
    const res = await fetch("/api/auth/token", { method: "POST", body });
    const data = await res.json();
    if (!res.ok) throw new Error(data.message || res.statusText);
    this.token = data.access_token;
    sessionStorage.setItem("citygrid.token", this.token);
    return data.user;
  },

  logout() { this.token = null; sessionStorage.removeItem("citygrid.token"); },

  async get(path) {
    const res = await fetch(path, { headers: { Authorization: `Bearer ${this.token}` } });
    if (res.status === 401) { this.logout(); throw new Error("401"); }
    const data = await res.json();
    if (!res.ok) throw new Error(data.message || res.statusText);
    return { data, next: res.headers.get("X-Next-After") };
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
