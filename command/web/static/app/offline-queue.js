// The outbox of the inspector's phone. Every report goes into IndexedDB first (photos as
// Blobs) with a client_ref made once, and leaves only after the server took it: a 2xx, or a
// 4xx that no retry can fix (kept, marked failed, with the server's message). A resent
// client_ref is answered `replayed: true`, so a retry after a lost answer makes no second case.
const outbox = {
  DB: "citygrid-outbox",
  STORE: "reports",
  _db: null,
  _running: null,
  _again: false,

  open() {
    if (!this._db) {
      this._db = new Promise((resolve, reject) => {
        const req = indexedDB.open(this.DB, 1);
        req.onupgradeneeded = () => req.result.createObjectStore(this.STORE, { keyPath: "client_ref" });
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      });
    }
    return this._db;
  },

  async _tx(mode, work) {
    const db = await this.open();
    return new Promise((resolve, reject) => {
      const tx = db.transaction(this.STORE, mode);
      const result = work(tx.objectStore(this.STORE));
      tx.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  },

  // Store a report; `fields` are the form fields, `files` the chosen photos.
  async add(owner, fields, files) {
    const item = {
      client_ref: newClientRef(), owner, created_at: new Date().toISOString(), fields,
      // Copy into plain Blobs: a File handle from the picker may not outlive the page.
      photos: await Promise.all(files.map(async (f) => ({ name: f.name, type: f.type,
        blob: new Blob([await f.arrayBuffer()], { type: f.type }) }))),
      status: "pending", error: null, attempts: 0,
    };
    await this._tx("readwrite", (s) => s.put(item));
    this._changed();
    return item;
  },

  async list(owner) {
    const all = await this._tx("readonly", (s) => s.getAll());
    return all.filter((i) => i.owner === owner).sort((a, b) => a.created_at.localeCompare(b.created_at));
  },

  async remove(ref) {
    await this._tx("readwrite", (s) => s.delete(ref));
    this._changed();
  },

  async _put(item) { await this._tx("readwrite", (s) => s.put(item)); },

  _changed(detail = {}) { document.dispatchEvent(new CustomEvent("outbox:changed", { detail })); },

  // Send what is pending, one at a time, oldest first. Concurrent calls share one run
  // (and ask for one more pass), so an item is never in flight twice.
  flush(owner) {
    if (this._running) { this._again = true; return this._running; }
    this._running = (async () => {
      try {
        do {
          this._again = false;
          await this._sendAll(owner);
        } while (this._again);
      } finally {
        this._running = null;
      }
    })();
    return this._running;
  },

  async _sendAll(owner) {
    for (const item of await this.list(owner)) {
      if (item.status !== "pending" || !api.token) continue;
      const body = new FormData();
      for (const [k, v] of Object.entries(item.fields)) if (v !== null && v !== undefined && v !== "") body.append(k, v);
      body.append("client_ref", item.client_ref);
      for (const p of item.photos) body.append("photos", p.blob, p.name);
      item.attempts += 1;
      let res;
      try {
        res = await fetch("/api/cases", { method: "POST", headers: api.authHeaders(), body });
      } catch (err) {
        await this._put(item);
        return;                              // the network is down: wait for `online` or the timer
      }
      const data = await res.json().catch(() => ({}));
      if (res.ok) {
        await this._tx("readwrite", (s) => s.delete(item.client_ref));
        this._changed({ sent: item, result: data });
      } else if (res.status === 401) {
        await this._put(item);
        this._changed({ unauthorized: true });   // kept; sent once the inspector logs in again
        return;
      } else if (res.status === 408 || res.status === 429 || res.status >= 500) {
        await this._put(item);
        return;                              // server trouble: keep and retry later
      } else {
        item.status = "failed";
        item.error = data.message || res.statusText;
        await this._put(item);
        this._changed({ failed: item });
      }
    }
  },
};
