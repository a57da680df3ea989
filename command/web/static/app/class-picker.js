// 事件/部件 → 大类 → 小类 from /api/catalog, for the report and hotline forms.
// Markup it expects inside `root`: radios name="kind" (event/part), select.big, select[name=class_code].
class ClassPicker {
  constructor(root, catalog) {
    this.root = root;
    this.catalog = catalog;
    this.big = root.querySelector("select.big");
    this.cls = root.querySelector("select[name=class_code]");
    root.querySelectorAll("input[name=kind]").forEach((r) => r.addEventListener("change", () => this.fillBig()));
    this.big.addEventListener("change", () => this.fillClasses());
    this.fillBig();
  }

  get kind() { return this.root.querySelector("input[name=kind]:checked").value; }

  groups() { return this.kind === "part" ? this.catalog.parts : this.catalog.events; }

  fillBig(selected = "") {
    const groups = this.groups().filter((b) => b.classes.length);
    this.big.innerHTML = html`<option value="">${t("choose_big")}</option>${groups.map((b) =>
      html`<option value="${b.code}">${b.code} ${b.name}</option>`)}`;
    this.big.value = selected;
    this.fillClasses();
  }

  fillClasses(selected = "") {
    const group = this.groups().find((b) => b.code === this.big.value);
    this.cls.innerHTML = html`<option value="">${t("choose_class")}</option>${(group ? group.classes : []).map((c) =>
      html`<option value="${c.code}">${c.code} ${c.name}</option>`)}`;
    this.cls.value = selected;
    this.cls.disabled = !group;
    this.root.dispatchEvent(new Event("class-change"));
  }

  // Set the whole choice at once (a tapped part: kind=part and its class).
  choose(kind, classCode) {
    this.root.querySelector(`input[name=kind][value=${kind}]`).checked = true;
    this.fillBig(classCode.slice(0, 2));
    this.fillClasses(classCode);
  }

  className(code) {
    for (const b of this.groups()) for (const c of b.classes) if (c.code === code) return c.name;
    return code;
  }
}
