// Pieces of a case shared by the console and the phone: due badge, deadlines, photos,
// timeline, reporters, extensions. Each returns html`` (escaped) or fills an element.
const HANDLING_STATES = ["dispatched", "in_progress", "suspended"];
const BEFORE_KINDS = ["report", "before", "evidence"];

function dueBadge(due) {
  if (!due) return html``;
  return html`<span class="badge due-${due}" data-due="${due}">${t(`due_${due}`)}</span>`;
}

function stateBadge(c) {
  return html`<span class="badge state" data-state="${c.state}">${stateName(c.state, c.state_name)}</span>`;
}

// The deadline that matters now: handling while a department works on it, else the stage's.
function currentDeadline(c) {
  return HANDLING_STATES.includes(c.state) ? c.handle_deadline : c.stage_deadline;
}

function deadlines(c) {
  const rows = [];
  if (c.stage_deadline) rows.push(html`<dt>${t("stage_deadline")}${c.stage ? html` (${c.stage})` : ""}</dt><dd>${fmtTime(c.stage_deadline)}</dd>`);
  if (c.handle_deadline) rows.push(html`<dt>${t("handle_deadline")}</dt><dd>${fmtTime(c.handle_deadline)}</dd>`);
  if (c.paused_at) rows.push(html`<dt>${t("paused_at")}</dt><dd>${fmtTime(c.paused_at)}</dd>`);
  if (c.closed_at) rows.push(html`<dt>${t("closed_at")}</dt><dd>${fmtTime(c.closed_at)}</dd>`);
  return html`${rows}`;
}

// Thumbnails (links to the full photo) loaded with the bearer token; `kinds` picks which.
function renderPhotos(box, c, kinds = null) {
  const photos = c.photos.filter((p) => !kinds || kinds.includes(p.kind));
  if (!photos.length) { box.innerHTML = html`<p class="hint">${t("no_photos")}</p>`; return; }
  box.innerHTML = html`${photos.map((p) => html`<a class="thumb" href="#" data-photo="${p.id}"
      title="${t(`photo_${p.kind}`)} · ${p.uploaded_by} · ${fmtTime(p.at)}"><img alt="${t(`photo_${p.kind}`)}">
      <span>${t(`photo_${p.kind}`)}</span></a>`)}`;
  for (const a of box.querySelectorAll("a.thumb")) {
    const base = `/api/cases/${c.id}/photos/${a.dataset.photo}`;
    api.blobUrl(`${base}?thumb=1`).then((url) => { a.querySelector("img").src = url; }).catch(() => {});
    a.addEventListener("click", (e) => { e.preventDefault(); showPhoto(base); });
  }
}

async function showPhoto(path) {
  let box = document.getElementById("lightbox");
  if (!box) {
    box = document.createElement("div");
    box.id = "lightbox";
    box.innerHTML = html`<img alt=""><p class="hint">${t("tap_to_close")}</p>`.text;
    box.addEventListener("click", () => { box.hidden = true; });
    document.body.appendChild(box);
  }
  box.hidden = false;
  const img = box.querySelector("img");
  img.removeAttribute("src");
  try { img.src = await api.blobUrl(path); } catch (err) { box.hidden = true; }
}

function timeline(c) {
  return html`<table class="timeline"><thead><tr><th>${t("when")}</th><th>${t("who")}</th><th>${t("action")}</th>
    <th>${t("state_change")}</th><th>${t("note")}</th></tr></thead><tbody>${c.timeline.map((e) => html`<tr>
      <td>${fmtTime(e.at)}</td><td>${e.actor} <span class="hint">${roleName(e.role)}</span></td>
      <td>${actionName(e.action, e.action_name)}</td>
      <td>${e.from_state ? html`${stateName(e.from_state)} → ` : ""}${stateName(e.to_state)}</td>
      <td>${e.note || ""}</td></tr>`)}</tbody></table>`;
}

function reporters(c) {
  return html`<ul class="plain">${c.reporters.map((r) => html`<li>${sourceName(r.source)} · ${r.name || t("anonymous")}
    ${r.phone ? html` · ${r.phone}` : ""} · ${fmtTime(r.reported_at)}</li>`)}</ul>`;
}

function extensions(c) {
  if (!c.extensions.length) return html`<p class="hint">${t("none")}</p>`;
  return html`<ul class="plain">${c.extensions.map((x) => html`<li>${x.amount} ${x.limit_kind} · ${x.reason || ""}
    · ${x.requested_by} ${fmtTime(x.requested_at)} · <b>${t(`ext_${x.status}`)}</b>
    ${x.decided_by ? html` (${x.decided_by} ${fmtTime(x.decided_at)})` : ""}</li>`)}</ul>`;
}
