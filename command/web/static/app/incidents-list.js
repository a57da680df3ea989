// The list of incidents (open first, as the API orders them) with its two filters:
// open / closed / all, and real / drill.
const incList = {
  items: [], selected: null,

  init() {
    const form = $("#inc-filters");
    this.fillFilters();
    form.addEventListener("change", () => this.load());
    $("#inc-table tbody").addEventListener("click", (e) => {
      const row = e.target.closest("tr[data-id]");
      if (row) location.hash = `#${row.dataset.id}`;
    });
  },

  fillFilters() {
    const form = $("#inc-filters");
    const keep = { status: form.status.value || "open", kind: form.kind.value || "all" };
    form.status.innerHTML = ["open", "closed", "all"].map((v) =>
      html`<option value="${v}">${t(`in_filter_${v}`)}</option>`.text).join("");
    form.kind.innerHTML = ["all", "real", "drill"].map((v) =>
      html`<option value="${v}">${t(`in_kind_${v}`)}</option>`.text).join("");
    form.status.value = keep.status;
    form.kind.value = keep.kind;
  },

  query() {
    const form = $("#inc-filters");
    const q = new URLSearchParams({ limit: "200" });
    if (form.status.value === "open") q.set("open", "true");
    if (form.status.value === "closed") q.set("status", "closed");
    if (form.kind.value !== "all") q.set("drill", String(form.kind.value === "drill"));
    return q.toString();
  },

  async load() {
    try {
      this.items = (await api.get(`/api/incidents?${this.query()}`)).data;
      incSay("inc-list-msg", "");
    } catch (err) {
      incSay("inc-list-msg", explainError(err));
    }
    this.render();
  },

  render() {
    const body = $("#inc-table tbody");
    if (!this.items.length) {
      body.innerHTML = html`<tr><td colspan="7" class="hint">${t("in_none")}</td></tr>`.text;
      return;
    }
    body.innerHTML = this.items.map((i) => html`<tr data-id="${i.id}" data-status="${i.status}"
        class="${[i.id === this.selected ? "selected" : "", i.status === "closed" ? "closed" : "", i.drill ? "drill" : ""].join(" ")}">
      <td>${i.incident_no}</td>
      <td>${drillBadge(i.drill)}${i.title}</td>
      <td>${catName(i.category)} / ${catName(i.subtype)}</td>
      <td>${levelBadge(i.level)}</td>
      <td>${statusBadge(i.status)}</td>
      <td class="num open-tasks">${i.open_tasks}</td>
      <td class="num overdue-tasks ${i.overdue_tasks ? "late" : ""}">${i.overdue_tasks}</td>
    </tr>`.text).join("");
  },

  select(id) {
    this.selected = id;
    $$("#inc-table tr[data-id]").forEach((tr) => tr.classList.toggle("selected", Number(tr.dataset.id) === id));
  },
};
