// The console's case list: filters (state, class, area, due colour, source), newest first,
// paged by the last id seen. What a user may see is the API's decision, not the page's.
const SOURCES = ["inspector", "public", "hotline", "device", "video"];
const DUES = ["green", "yellow", "red", "paused"];

const caseList = {
  rows: [], next: null, flow: null, catalog: null, areas: [], selected: null,

  init(flow, catalog, areas) {
    Object.assign(this, { flow, catalog, areas });
    this.fillFilters();
    const form = $("#filters");
    form.addEventListener("change", () => this.load());
    $("#list-refresh").addEventListener("click", () => this.load());
    $("#more").addEventListener("click", () => this.load(true));
  },

  fillFilters() {
    const form = $("#filters");
    const keep = Object.fromEntries(new FormData(form));
    form.state.innerHTML = html`<option value="">${t("all_states")}</option>${Object.entries(this.flow.states).map(([k, s]) =>
      html`<option value="${k}">${stateName(k, s.name)}</option>`)}`;
    const classGroups = (label, groups) => groups.filter((b) => b.classes.length).map((b) =>
      html`<optgroup label="${label} · ${b.name}">${b.classes.map((c) => html`<option value="${c.code}">${c.code} ${c.name}</option>`)}</optgroup>`);
    form.class_code.innerHTML = html`<option value="">${t("all_classes")}</option>${classGroups(t("kind_event"), this.catalog.events)}${classGroups(t("kind_part"), this.catalog.parts)}`;
    form.area.innerHTML = html`<option value="">${t("all_areas")}</option>${this.areas.map((county) => county.streets.map((s) =>
      html`<option value="${s.code}">${s.name}</option>${s.communities.map((c) =>
        html`<option value="${c.code}">　${c.name}</option>`)}`))}`;
    form.due.innerHTML = html`<option value="">${t("all_dues")}</option>${DUES.map((d) => html`<option value="${d}">${t(`due_${d}`)}</option>`)}`;
    form.source.innerHTML = html`<option value="">${t("all_sources")}</option>${SOURCES.map((s) => html`<option value="${s}">${sourceName(s)}</option>`)}`;
    for (const [k, v] of Object.entries(keep)) form[k].value = v;
  },

  query() {
    const params = new URLSearchParams();
    for (const [k, v] of new FormData($("#filters"))) if (v) params.append(k, v);
    params.set("limit", "50");
    return params;
  },

  async load(append = false) {
    const params = this.query();
    if (append && this.next) params.set("before", this.next);
    const status = $("#list-status");
    try {
      const { data } = await api.get(`/api/cases?${params}`);
      this.rows = append ? [...this.rows, ...data.cases] : data.cases;
      this.next = data.next_before;
      status.textContent = this.rows.length ? "" : t("no_cases");
    } catch (err) {
      status.textContent = explainError(err);
    }
    this.render();
  },

  render() {
    $("#case-table tbody").innerHTML = html`${this.rows.map((c) => html`<tr data-case="${c.id}"
        class="${c.id === this.selected ? "selected" : ""}" tabindex="0">
      <td>${c.case_no}<br><span class="hint">${fmtTime(c.created_at)}</span></td>
      <td>${c.class_name}</td><td>${stateBadge(c)}</td>
      <td>${dueBadge(c.due)}<br><span class="hint">${fmtTime(currentDeadline(c))}</span></td>
      <td>${sourceName(c.source)}</td></tr>`)}`;
    $$("#case-table tbody tr").forEach((tr) => {
      const open = () => { location.hash = `#case/${tr.dataset.case}`; };
      tr.addEventListener("click", open);
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
    });
    $("#more").hidden = !this.next;
  },

  select(id) {
    this.selected = id;
    $$("#case-table tbody tr").forEach((tr) => tr.classList.toggle("selected", Number(tr.dataset.case) === id));
  },
};
