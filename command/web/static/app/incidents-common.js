// What the emergency console (应急指挥台, /incidents) shares across its parts: the strings in
// both languages, the role sets mirrored from command/auth.py (to hide what a role may not do;
// the server still decides), JSON requests, and the small badges (level colour, drill).
Object.assign(STRINGS.zh, {
  inc_title: "应急指挥台 · CityGrid Command", in_report: "上报突发事件", in_filter_open: "处置中",
  in_filter_closed: "已关闭", in_filter_all: "全部", in_kind_all: "真实与演练", in_kind_real: "真实事件",
  in_kind_drill: "演练", in_no: "编号", in_name: "标题", in_category: "类别", in_level: "级别", in_status: "状态",
  in_open_tasks: "未完成任务", in_overdue: "超时", in_none: "没有符合条件的突发事件", in_pick: "从左侧列表选择突发事件，或上报新的突发事件",
  in_drill: "【演练】", in_loading: "加载中…",
  ts_blocked: "等待前置", ts_open: "待办", ts_in_progress: "进行中", ts_done: "已完成", ts_waived: "已豁免",
  ts_cancelled: "已取消", os_sent: "已下达", os_acknowledged: "已确认", os_arrived: "已到场", os_released: "已归队",
  os_refused: "已拒绝",
  st_reported: "已报告", st_verified: "已核实", st_responding: "响应中", st_contained: "已控制", st_closed: "已关闭",
  go_verified: "核实", go_responding: "响应", go_contained: "控制", go_closed: "关闭",
  lv_1: "特别重大", lv_2: "重大", lv_3: "较大", lv_4: "一般",
  // the report form
  f_title: "标题", f_title_promote: "标题（留空则用来源的标题）", f_category: "类别", f_subtype: "子类",
  f_level: "级别", f_place: "位置（点击地图或填写经纬度）", f_place_promote: "位置（留空则用来源的位置）",
  f_lon: "经度", f_lat: "纬度", f_radius: "影响半径（米）", f_description: "描述",
  f_details: "现场数据（如积水深度 depth）", f_key: "名称", f_value: "数值", f_add_detail: "添加一项",
  f_drill: "演练（不计入统计）", f_activate: "自动启动适用的预案", f_submit: "上报", f_cancel: "取消",
  f_promote_from: "升级来源", f_reported: "已上报", f_activated: "已启动预案", f_tasks: "项任务",
  f_not_activated: "未自动启动预案（指挥长可在详情中手动启动）", f_choose_plan: "多个预案适用，已请指挥长选择：", f_choose: "请选择",
  src_case: "案卷", src_device_alarm: "设备告警", src_camera_event: "视频事件", src_unit_alarm: "巡查告警",
  // the detail
  d_reported: "报告", d_verified: "核实", d_responding: "响应", d_contained: "控制", d_closed: "关闭",
  d_by: "报告人", d_grid: "网格", d_radius: "影响半径", d_details: "现场数据", d_links: "关联",
  d_situation: "事件态势图", d_report_html: "评估报告（网页）", d_report_pdf: "评估报告（PDF）",
  d_status_note: "说明（可选）", d_level_reason: "调整理由（必填）", d_change_level: "调整级别",
  d_plans: "应急预案", d_no_plan: "尚未启动预案", d_choose_plan: "选择预案", d_activate: "启动预案",
  d_no_matching_plan: "没有覆盖此类事件的预案", d_auto: "自动", d_manual: "手动", d_levels: "响应级别",
  d_tasks: "任务", d_no_tasks: "暂无任务", d_response: "级响应", d_owner: "负责人", d_post: "岗位",
  d_nobody: "无人值班", d_due: "时限", d_mandatory: "必办", d_optional: "非必办", d_overdue: "已超时",
  d_escalated: "已督办", d_waits_for: "等待前置任务", d_depends_on: "前置任务", d_needs: "所需资源",
  d_waived: "豁免理由", d_task_note: "说明 / 理由", d_reassign_to: "转派给",
  ta_start: "开始", ta_done: "完成", ta_reopen: "重新打开", ta_waive: "豁免", ta_reassign: "转派",
  d_suggest: "推荐资源", d_hide_suggest: "收起推荐", d_need: "需", d_sent: "已派", d_no_resources: "附近没有可用资源",
  d_eta: "预计", d_min: "分钟", d_dispatch: "调派", d_orders: "调度指令", d_no_orders: "暂无调度指令",
  d_resource: "资源", d_quantity: "数量", d_ordered: "下达", d_ack_due: "确认时限", d_unacked_late: "超时未确认",
  oa_acknowledge: "确认", oa_arrive: "到场", oa_release: "归队",
  d_dispatched: "已调派", d_timeline: "时间轴", d_no_events: "暂无记录",
  d_changed_reloaded: "有人刚刚修改了这里，已重新加载：", d_done_ok: "已完成操作",
  d_report_needs_close: "事件关闭后可生成评估报告", d_live_lost: "实时连接中断，正在重连…",
  // public warnings (预警信息)
  al_title: "预警信息", al_none: "暂无预警", al_draft: "起草预警", al_msg_type: "类型", al_references: "更新/取消的预警",
  al_values: "模板数值（每行 名称=数值）", al_area: "预警区域描述", al_expires: "有效期（分钟）", al_note: "备注",
  al_submit: "提交草稿", al_approve: "签发", al_reject: "驳回", al_reject_reason: "驳回理由", al_cap: "CAP 文件",
  al_preview: "草稿预览", al_drafted: "起草", al_decided: "审批", al_sent: "发布", al_expires_at: "有效至",
  al_Alert: "预警", al_Update: "更新", al_Cancel: "解除",
  als_draft: "待签发", als_issued: "已发布", als_rejected: "已驳回", als_superseded: "已更新", als_cancelled: "已解除",
  al_unavailable: "预警服务暂不可用：", al_area_default: "留空则按街道和道路自动生成",
});
Object.assign(STRINGS.en, {
  inc_title: "Emergency command · CityGrid Command", in_report: "Report an incident", in_filter_open: "Open",
  in_filter_closed: "Closed", in_filter_all: "All", in_kind_all: "Real and drills", in_kind_real: "Real only",
  in_kind_drill: "Drills", in_no: "No.", in_name: "Title", in_category: "Category", in_level: "Level", in_status: "Status",
  in_open_tasks: "Open tasks", in_overdue: "Overdue", in_none: "No incidents match", in_pick: "Pick an incident on the left, or report a new one",
  in_drill: "[DRILL]", in_loading: "Loading…",
  ts_blocked: "Waiting", ts_open: "Open", ts_in_progress: "In progress", ts_done: "Done", ts_waived: "Waived",
  ts_cancelled: "Cancelled", os_sent: "Sent", os_acknowledged: "Acknowledged", os_arrived: "Arrived",
  os_released: "Released", os_refused: "Refused",
  st_reported: "Reported", st_verified: "Verified", st_responding: "Responding", st_contained: "Contained", st_closed: "Closed",
  go_verified: "Verify", go_responding: "Respond", go_contained: "Contain", go_closed: "Close",
  lv_1: "Extraordinary", lv_2: "Major", lv_3: "Large", lv_4: "General",
  f_title: "Title", f_title_promote: "Title (empty: the source's)", f_category: "Category", f_subtype: "Subtype",
  f_level: "Level", f_place: "Place (click the map or type lon/lat)", f_place_promote: "Place (empty: the source's)",
  f_lon: "Longitude", f_lat: "Latitude", f_radius: "Affected radius (m)", f_description: "Description",
  f_details: "Figures (e.g. water depth)", f_key: "Name", f_value: "Value", f_add_detail: "Add one",
  f_drill: "Drill (left out of the statistics)", f_activate: "Start the matching plan at once", f_submit: "Report",
  f_cancel: "Cancel", f_promote_from: "Promoted from", f_reported: "Reported", f_activated: "Plan started",
  f_tasks: "tasks", f_not_activated: "No plan started automatically (a commander can start one in the detail)",
  f_choose_plan: "Several plans apply; the commander was asked to choose: ",
  f_choose: "Choose", src_case: "case", src_device_alarm: "device alarm", src_camera_event: "camera event",
  src_unit_alarm: "patrol alarm",
  d_reported: "Reported", d_verified: "Verified", d_responding: "Responding", d_contained: "Contained", d_closed: "Closed",
  d_by: "Reported by", d_grid: "Grid", d_radius: "Affected radius", d_details: "Figures", d_links: "Linked",
  d_situation: "Situation map", d_report_html: "After-action report (web)", d_report_pdf: "After-action report (PDF)",
  d_status_note: "Note (optional)", d_level_reason: "Reason (required)", d_change_level: "Change level",
  d_plans: "Plans", d_no_plan: "No plan running", d_choose_plan: "Choose a plan", d_activate: "Start the plan",
  d_no_matching_plan: "No plan covers this kind of incident", d_auto: "automatic", d_manual: "by hand",
  d_levels: "levels", d_tasks: "Tasks", d_no_tasks: "No tasks", d_response: " response", d_owner: "Owner",
  d_post: "Post", d_nobody: "nobody on duty", d_due: "Due", d_mandatory: "mandatory", d_optional: "optional",
  d_overdue: "overdue", d_escalated: "escalated", d_waits_for: "Waits for", d_depends_on: "Depends on",
  d_needs: "Needs", d_waived: "Waived because", d_task_note: "Note / reason", d_reassign_to: "Reassign to",
  ta_start: "Start", ta_done: "Done", ta_reopen: "Reopen", ta_waive: "Waive", ta_reassign: "Reassign",
  d_suggest: "Suggest resources", d_hide_suggest: "Hide suggestions", d_need: "need", d_sent: "sent",
  d_no_resources: "No available resource nearby", d_eta: "ETA", d_min: "min", d_dispatch: "Dispatch",
  d_orders: "Dispatch orders", d_no_orders: "No dispatch orders yet", d_resource: "Resource", d_quantity: "Qty",
  d_ordered: "Ordered", d_ack_due: "Ack due", d_unacked_late: "not acknowledged in time",
  oa_acknowledge: "Acknowledge", oa_arrive: "Arrived", oa_release: "Release",
  d_dispatched: "Dispatched", d_timeline: "Timeline", d_no_events: "Nothing yet",
  d_changed_reloaded: "Someone else changed this — reloaded: ", d_done_ok: "Done",
  d_report_needs_close: "The after-action report comes once the incident is closed",
  d_live_lost: "Live connection lost, reconnecting…",
  al_title: "Public warnings", al_none: "No warnings", al_draft: "Draft a warning", al_msg_type: "Type",
  al_references: "Warning updated/cancelled", al_values: "Template values (one name=value a line)",
  al_area: "Area description", al_expires: "Valid for (minutes)", al_note: "Note", al_submit: "Save the draft",
  al_approve: "Approve", al_reject: "Reject", al_reject_reason: "Why rejected", al_cap: "CAP file",
  al_preview: "Draft preview", al_drafted: "Drafted", al_decided: "Decided", al_sent: "Sent", al_expires_at: "Valid until",
  al_Alert: "Alert", al_Update: "Update", al_Cancel: "Cancel",
  als_draft: "awaiting approval", als_issued: "issued", als_rejected: "rejected", als_superseded: "superseded",
  als_cancelled: "cancelled", al_unavailable: "Warnings are not available: ",
  al_area_default: "empty: the street and road, worked out",
});

// Mirrors of command/auth.py PERMISSIONS.
const INC_ROLES = {
  report: new Set(["admin", "leader", "commander", "shift_lead", "operator", "dispatcher"]),
  command: new Set(["leader", "commander"]),
  dispatch: new Set(["leader", "commander", "shift_lead", "dispatcher"]),
  alertDraft: new Set(["leader", "commander", "shift_lead", "operator"]),
  alertApprove: new Set(["leader", "commander"]),
};
const INC_LEVELS = ["Ⅰ", "Ⅱ", "Ⅲ", "Ⅳ"];
// Which status may follow which (workflows/incidents.py NEXT).
const INC_NEXT = { reported: ["verified", "responding", "closed"], verified: ["responding", "closed"],
                   responding: ["contained", "closed"], contained: ["responding", "closed"], closed: [] };
const TASK_OPEN = new Set(["blocked", "open", "in_progress"]);

function incCan(what) { return Boolean(api.user) && INC_ROLES[what].has(api.user.role); }

// A category or subtype in the page's language (the English from /api/emergency/catalog).
function catName(name) { return LANG === "en" ? incPage.catalog?.names_en[name] || name : name; }

function levelBadge(level) {
  const n = INC_LEVELS.indexOf(level) + 1;
  return html`<span class="lv lv-${n}" data-level="${level}" title="${t(`lv_${n}`)}">${level}${LANG === "en" ? "" : "级"}</span>`;
}

function drillBadge(drill) { return drill ? html`<span class="drill-badge">${t("in_drill")}</span>` : ""; }

function statusBadge(status) { return html`<span class="inc-st st-${status}">${t(`st_${status}`)}</span>`; }

function isOverdue(task) { return TASK_OPEN.has(task.status) && Date.parse(task.due_at) < Date.now(); }


// Show a message in one of the page's message areas (class "error" or "ok").
function incSay(id, text, ok = false) {
  const el = document.getElementById(id);
  if (!el) return;
  el.textContent = text || "";
  el.className = ok ? "ok" : "error";
}

// Redraw `box` without losing what the user was typing: the values of its text inputs and
// selects (by the row they belong to and their name) and the focus come back after `draw()`.
function redrawKeeping(box, draw) {
  if (!box) { draw(); return; }
  const keyOf = (el) => {
    const row = el.closest("[data-task], [data-alert], [data-order]");
    return `${row ? `${row.dataset.task || ""}/${row.dataset.alert || ""}/${row.dataset.order || ""}` : ""}:${el.name}`;
  };
  const fields = (root) => $$("input[name]:not([type=checkbox]), textarea[name], select[name]", root);
  const kept = new Map(fields(box).filter((el) => el.value).map((el) => [keyOf(el), el.value]));
  const focused = box.contains(document.activeElement) && document.activeElement.name ? keyOf(document.activeElement) : null;
  draw();
  for (const el of fields(box)) {
    const key = keyOf(el);
    if (kept.has(key) && (el.tagName !== "SELECT" || [...el.options].some((o) => o.value === kept.get(key)))) el.value = kept.get(key);
    if (key === focused) el.focus();
  }
}
