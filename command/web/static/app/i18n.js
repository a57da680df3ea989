// UI strings: Chinese by default, English on request (remembered in localStorage).
const STRINGS = {
  zh: {
    title: "城市网格地图 · CityGrid Command", brand: "CityGrid 数字城管", logout: "退出",
    login_title: "登录", username: "用户名", password: "密码", login: "登录",
    demo_hint: "演示账号：admin / citygrid-demo", areas: "辖区", legend: "图例", lookup: "点查",
    lookup_hint: "点击地图查询所在网格和附近部件", grids: "单元网格", parts: "部件", streets: "街道/镇",
    communities: "社区", grid: "网格", community: "社区", street: "街道", county: "区县",
    nearest: "附近部件", none: "无", outside: "不在辖区网格内", status: "状态", klass: "类别",
    code: "编码", population: "人口", area: "面积", roads: "道路", buildings: "建筑", water: "水系",
    loading: "加载中…", switch: "English", parts_zoom: "放大到街道级别显示部件",
    parts_truncated: "视图内部件过多，仅显示前 5000 个，请放大",
    // cases: shared
    m_title: "监督员 · CityGrid Command", console_title: "案卷受理与处置 · CityGrid Command",
    network_down: "网络不通，请稍后再试", case: "案卷", case_no: "案卷号", state: "状态", source: "来源",
    deadline: "时限", stage_deadline: "阶段时限", handle_deadline: "处置时限", paused_at: "挂账时间",
    closed_at: "结案时间", kind_event: "事件", kind_part: "部件", big_class: "大类", small_class: "小类",
    choose_big: "请选择大类", choose_class: "请选择小类", choose: "请选择", description: "描述", address: "地址",
    photos: "照片", no_photos: "暂无照片", tap_to_close: "点击关闭", when: "时间", who: "人员", action: "动作",
    state_change: "状态变化", note: "备注", anonymous: "匿名", refresh: "刷新", actions: "可执行操作",
    no_actions: "当前没有您可执行的操作", department: "处置部门", suggested: "建议部门", merge_into: "合并到案卷",
    merge_other: "或输入案卷 ID", choose_merge_target: "请选择要合并到的案卷", ext_amount: "延期时长",
    ext_kind: "单位", after_photo: "处置后照片（必需）", note_required: "说明（必填）", note_optional: "备注（可选）",
    confirm_action: "确定", cancel: "取消", err_403: "无权限：", err_404: "找不到：", err_409: "冲突：",
    err_422: "输入有误：", due_green: "正常", due_yellow: "临期", due_red: "超期", due_paused: "暂停",
    ext_pending: "待审批", ext_approved: "已批准", ext_rejected: "已驳回", photo_report: "上报",
    photo_before: "处置前", photo_after: "处置后", photo_evidence: "取证", maybe_duplicate: "可能重复",
    choose_class_first: "请先选择小类",
    // the phone page
    take_photo: "拍照 / 选择照片", place_marker_first: "尚未定位：请在地图上点选或拖动标记到问题位置", offline: "离线", tab_report: "上报", tab_tasks: "我的任务", my_tasks: "我的任务", relocate: "重新定位",
    send: "发送", queued: "待发送", locating: "正在定位…", no_geolocation: "此浏览器不能定位，请在地图上拖动标记",
    geo_failed: "定位失败，请在地图上拖动标记：", position_unknown: "尚未定位", position_adjusted: "已手动调整位置",
    gps_accuracy: "定位精度", drag_marker: "拖动标记调整位置", nearby_parts: "附近部件（点选即按部件上报）",
    chosen_part: "已选部件", clear: "取消", remove: "移除", sending: "正在发送…",
    queued_offline: "网络不通：已存入待发送队列，联网后自动发送", sent: "已发送：案卷", send_failed: "发送失败",
    discard: "删除", discard_confirm: "删除这条未发送的上报？", login_again: "登录已过期，请重新登录后自动发送",
    m_for_inspectors: "本页面供监督员使用；其他岗位请使用控制台", no_tasks: "暂无核实/核查任务",
    task_verify: "核实", task_check: "核查", back: "返回", photos_before: "处置前照片", photos_after: "处置后照片",
    you_are_here: "我的位置", straight_line: "直线距离", heading: "方向",
    compass_0: "北", compass_1: "东北", compass_2: "东", compass_3: "东南", compass_4: "南", compass_5: "西南",
    compass_6: "西", compass_7: "西北",
    // the console
    hotline: "热线受理", notifications: "通知", no_notifications: "没有未读通知", more: "更多",
    pick_case: "从左侧列表选择案卷", all_states: "全部状态", all_classes: "全部类别", all_areas: "全部区域",
    all_dues: "全部时限", all_sources: "全部来源", no_cases: "没有符合条件的案卷", part: "部件编码",
    assignee: "核实/核查人", rework_return: "返工/退回次数", merged_into: "已合并到", duplicates: "可能重复的案卷",
    merge_to_this: "合并到该案卷", timeline: "处理过程", reporters: "上报人", extensions: "延期",
    inspectors_use_m: "监督员请使用手机页面", caller: "来电人", caller_name: "姓名", caller_phone: "电话",
    pick_point: "请在地图上点击问题位置", photos_optional: "照片（可选）", submit_hotline: "提交受理",
    description_needed: "请填写问题描述", hotline_done: "已受理，转监督员核实：",
    // IoT devices (/devices) and device alarms (/alarms); the header's page links
    nav_map: "地图", nav_console: "案卷", nav_devices: "设备", nav_alarms: "告警",
    nav_wall: "视频墙", nav_incidents: "应急指挥", nav_duty: "值班", cameras_seeing: "可见此处的摄像机", cam_layer: "摄像机", cov_layer: "监控盲区", cov_share: "街面覆盖", cov_suggest: "建议点位",
    cam_online: "在线", cam_offline: "离线", cam_not_tried: "尚未接入", wall_title: "视频墙 · CityGrid Command", wall_group: "分组", wall_all: "全部摄像机",
    wall_online: "在线", wall_offline: "离线", wall_no_signal: "无信号，稍后重试", wall_none: "没有摄像机",
    devices_title: "物联感知设备 · CityGrid Command", alarms_title: "设备告警 · CityGrid Command",
    dv_all_types: "全部类型", dv_any_state: "全部状态", dv_with_alarms: "有告警", dv_offline: "离线",
    dv_normal: "正常", dv_id: "设备编号", dv_type: "类型", dv_online: "在线", dv_last_reading: "最新读数",
    dv_latest: "最新值", dv_alarms: "告警", dv_devices: "台设备", dv_none: "没有符合条件的设备",
    dv_pick: "从列表或地图选择设备", dv_state_online: "在线", dv_state_offline: "离线", dv_state_unknown: "未知",
    dv_never: "尚未上报", dv_seen: "最后通信", dv_part: "所在部件", dv_dept: "权属部门", dv_position: "位置",
    dv_meta: "设备信息", dv_active_alarms: "当前告警", dv_no_alarms: "无当前告警", dv_chart: "数据曲线",
    dv_field: "指标", dv_w_1h: "1 小时", dv_w_24h: "24 小时", dv_w_7d: "7 天", dv_points: "个数据点",
    dv_hourly: "小时均值", dv_bucket: "{n} 秒均值", dv_raw: "原始读数", dv_last_value: "最新",
    dv_no_data: "该时段没有数据",
    dv_no_chart: "该类型没有可绘制的指标", dv_commands: "指令记录", dv_no_commands: "暂无指令",
    dv_send_command: "发送指令", dv_command: "指令", dv_send: "发送", dv_queued_ok: "指令已排队：",
    dv_no_command_types: "该类型设备不接受指令", dv_cmd_not_allowed: "您的岗位不能向设备发送指令",
    dv_by: "发送人", dv_yes: "是", dv_no: "否", dv_live_lost: "实时连接中断，正在重连…",
    dv_limited: "只列出前 {n} 台，可用筛选缩小范围或点击“更多”",
    cmd_queued: "待发送", cmd_sent: "已发送", cmd_acked: "已执行", cmd_failed: "执行失败", cmd_timed_out: "超时",
    al_active: "当前告警", al_unacknowledged: "待确认", al_cleared: "已恢复", al_all: "全部",
    al_all_severities: "全部级别", al_device_id: "设备编号", al_severity: "级别", al_alarm: "告警", al_status: "状态",
    al_raised: "发生时间", al_last: "最近一次", al_repeats: "重复", al_part: "部件", al_case: "案卷", al_ack: "确认",
    al_comment: "添加评论", al_comments: "评论", al_no_comments: "暂无评论", al_comment_body: "评论内容",
    al_none: "没有符合条件的告警", al_pick: "从左侧列表选择告警", al_acked: "确认", al_cleared_at: "恢复",
    al_escalated: "已升级", al_value: "触发值", al_device: "设备", al_view_only: "您的岗位只能查看告警",
    al_alarms: "条告警", al_acked_ok: "已确认", al_commented_ok: "评论已添加", al_apply: "查询",
  },
  en: {
    title: "City grid map · CityGrid Command", brand: "CityGrid Command", logout: "Log out",
    login_title: "Log in", username: "User name", password: "Password", login: "Log in",
    demo_hint: "Demo account: admin / citygrid-demo", areas: "Jurisdiction", legend: "Legend", lookup: "Look-up",
    lookup_hint: "Click the map for its unit grid and nearby parts", grids: "Unit grids", parts: "Parts",
    streets: "Streets/towns", communities: "Communities", grid: "Grid", community: "Community", street: "Street",
    county: "County", nearest: "Nearby parts", none: "none", outside: "Outside the jurisdiction's grids",
    status: "Status", klass: "Class", code: "Code", population: "Population", area: "Area", roads: "Roads",
    buildings: "Buildings", water: "Water", loading: "Loading…", switch: "中文",
    parts_zoom: "Zoom in to street level to see parts", parts_truncated: "Too many parts here: showing the first 5,000; zoom in",
    m_title: "Inspector · CityGrid Command", console_title: "Cases · CityGrid Command",
    network_down: "The network is down; try again shortly", case: "Case", case_no: "Case no.", state: "State",
    source: "Source", deadline: "Due", stage_deadline: "Stage due", handle_deadline: "Handling due",
    paused_at: "Suspended at", closed_at: "Closed at", kind_event: "Event", kind_part: "Part",
    big_class: "Category", small_class: "Class", choose_big: "Choose a category", choose_class: "Choose a class",
    choose: "Choose", description: "Description", address: "Address", photos: "Photos", no_photos: "No photos",
    tap_to_close: "Tap to close", when: "When", who: "Who", action: "Action", state_change: "State", note: "Note",
    anonymous: "Anonymous", refresh: "Refresh", actions: "Actions", no_actions: "Nothing for you to do on this case now",
    department: "Department", suggested: "Suggested department", merge_into: "Merge into case",
    merge_other: "or type a case id", choose_merge_target: "Choose the case to merge into",
    ext_amount: "Extension", ext_kind: "Unit", after_photo: "Photo of the result (required)",
    note_required: "Reason (required)", note_optional: "Note (optional)", confirm_action: "Confirm", cancel: "Cancel",
    err_403: "Not allowed: ", err_404: "Not found: ", err_409: "Conflict: ", err_422: "Check the input: ",
    due_green: "On time", due_yellow: "Near due", due_red: "Overdue", due_paused: "Paused",
    ext_pending: "pending", ext_approved: "approved", ext_rejected: "rejected", photo_report: "Report",
    photo_before: "Before", photo_after: "After", photo_evidence: "Evidence", maybe_duplicate: "Possible duplicates",
    choose_class_first: "Choose a class first",
    take_photo: "Take / choose photos", place_marker_first: "No GPS fix yet: tap the map or drag the marker to the problem", offline: "Offline", tab_report: "Report", tab_tasks: "My tasks", my_tasks: "My tasks", relocate: "Locate me",
    send: "Send", queued: "Waiting", locating: "Locating…", no_geolocation: "This browser cannot locate; drag the marker",
    geo_failed: "Could not locate; drag the marker: ", position_unknown: "Position not known yet",
    position_adjusted: "Position adjusted by hand", gps_accuracy: "GPS accuracy", drag_marker: "Drag to adjust",
    nearby_parts: "Nearby parts (tap to report that part)", chosen_part: "Part", clear: "Clear", remove: "Remove",
    sending: "Sending…", queued_offline: "No network: kept in the outbox, sent when the network returns",
    sent: "Sent: case", send_failed: "Not accepted", discard: "Delete", discard_confirm: "Delete this unsent report?",
    login_again: "Session expired: log in again and the outbox is sent",
    m_for_inspectors: "This page is for field inspectors; other roles use the console", no_tasks: "No verification or checking tasks",
    task_verify: "Verify", task_check: "Check", back: "Back", photos_before: "Before", photos_after: "After",
    you_are_here: "You are here", straight_line: "Straight line", heading: "heading",
    compass_0: "N", compass_1: "NE", compass_2: "E", compass_3: "SE", compass_4: "S", compass_5: "SW",
    compass_6: "W", compass_7: "NW",
    hotline: "Hotline call", notifications: "Notifications", no_notifications: "No unread notifications", more: "More",
    pick_case: "Pick a case from the list", all_states: "All states", all_classes: "All classes", all_areas: "All areas",
    all_dues: "Any due status", all_sources: "All sources", no_cases: "No cases match", part: "Part id",
    assignee: "Inspector", rework_return: "Rework / returns", merged_into: "Merged into", duplicates: "Possible duplicates",
    merge_to_this: "Merge into this one", timeline: "Timeline", reporters: "Reporters", extensions: "Extensions",
    inspectors_use_m: "Inspectors: use the phone page", caller: "Caller", caller_name: "Name", caller_phone: "Phone",
    pick_point: "Click the map where the problem is", photos_optional: "Photos (optional)", submit_hotline: "Take the call",
    description_needed: "Describe the problem", hotline_done: "Taken; sent to the inspector for verification:",
    nav_map: "Map", nav_console: "Cases", nav_devices: "Devices", nav_alarms: "Alarms",
    nav_wall: "Video wall", nav_incidents: "Emergencies", nav_duty: "Duty", cameras_seeing: "Cameras that see this place", cam_layer: "Cameras", cov_layer: "Blind spots", cov_share: "street covered", cov_suggest: "suggested site",
    cam_online: "online", cam_offline: "offline", cam_not_tried: "not connected yet", wall_title: "Video wall · CityGrid Command", wall_group: "Group", wall_all: "All cameras",
    wall_online: "online", wall_offline: "offline", wall_no_signal: "No signal; trying again shortly", wall_none: "No cameras",
    devices_title: "IoT devices · CityGrid Command", alarms_title: "Device alarms · CityGrid Command",
    dv_all_types: "All types", dv_any_state: "Any state", dv_with_alarms: "With alarms", dv_offline: "Offline",
    dv_normal: "Normal", dv_id: "Device", dv_type: "Type", dv_online: "Online", dv_last_reading: "Last reading",
    dv_latest: "Latest values", dv_alarms: "Alarms", dv_devices: "devices", dv_none: "No devices match",
    dv_pick: "Pick a device from the list or the map", dv_state_online: "Online", dv_state_offline: "Offline",
    dv_state_unknown: "Unknown", dv_never: "Never reported", dv_seen: "Last heard", dv_part: "Part",
    dv_dept: "Department", dv_position: "Position", dv_meta: "Device info", dv_active_alarms: "Active alarms",
    dv_no_alarms: "No active alarms", dv_chart: "Telemetry", dv_field: "Field", dv_w_1h: "1 h", dv_w_24h: "24 h",
    dv_w_7d: "7 d", dv_points: "points", dv_hourly: "hourly averages", dv_bucket: "{n}-second averages",
    dv_raw: "raw readings", dv_last_value: "latest",
    dv_no_data: "No readings in this window", dv_no_chart: "This type has no field to chart",
    dv_commands: "Command log", dv_no_commands: "No commands yet", dv_send_command: "Send a command",
    dv_command: "Command", dv_send: "Send", dv_queued_ok: "Command queued: ",
    dv_no_command_types: "This type takes no commands", dv_cmd_not_allowed: "Your role may not send commands",
    dv_by: "By", dv_yes: "yes", dv_no: "no", dv_live_lost: "Live connection lost, reconnecting…",
    dv_limited: "Showing the first {n}; narrow the filters or press More",
    cmd_queued: "Queued", cmd_sent: "Sent", cmd_acked: "Done", cmd_failed: "Failed", cmd_timed_out: "Timed out",
    al_active: "Active", al_unacknowledged: "Awaiting acknowledgement", al_cleared: "Cleared", al_all: "All",
    al_all_severities: "All severities", al_device_id: "Device id", al_severity: "Severity", al_alarm: "Alarm",
    al_status: "Status", al_raised: "Raised", al_last: "Last", al_repeats: "Repeats", al_part: "Part", al_case: "Case",
    al_ack: "Acknowledge", al_comment: "Add comment", al_comments: "Comments", al_no_comments: "No comments",
    al_comment_body: "Comment", al_none: "No alarms match", al_pick: "Pick an alarm from the list",
    al_acked: "Acknowledged", al_cleared_at: "Cleared", al_escalated: "Escalated", al_value: "Values",
    al_device: "Device", al_view_only: "Your role may only view alarms", al_alarms: "alarms",
    al_acked_ok: "Acknowledged", al_commented_ok: "Comment added", al_apply: "Show",
  },
};

// Names the server gives in Chinese (states, actions, roles): English here, the server's
// own word in Chinese so the flow table stays the one source.
const NAMES_EN = {
  state: { verifying: "Verifying", reported: "To be filed", filed: "Filed", not_filed: "Not filed",
           dispatched: "Dispatched", in_progress: "In progress", suspended: "Suspended", handled: "Handled",
           checking: "Checking", checked: "Checked", closed: "Closed", void: "Void" },
  action: { report: "Report", confirm: "Confirm", dismiss: "Dismiss", file: "File", reject: "Do not file",
            dispatch: "Dispatch", accept: "Accept", return: "Return", request_extension: "Request extension",
            approve_extension: "Approve extension", reject_extension: "Refuse extension", suspend: "Suspend",
            resume: "Resume", handle: "Report handled", send_check: "Send to check", check_pass: "Check passed",
            check_fail: "Check failed (rework)", close: "Close", void: "Void", merge: "Merge duplicate",
            merged_in: "Merged in" },
  role: { admin: "Administrator", leader: "Leader", commander: "Commander", shift_lead: "Shift lead",
          operator: "Operator", dispatcher: "Dispatcher", department: "Department", inspector: "Inspector",
          public: "Public" },
  source: { inspector: "Inspector", public: "Public", hotline: "Hotline", device: "Device", video: "Video" },
  // Device alarms and the device type catalog (devices/seed/device_types.yaml names them in Chinese).
  severity: { critical: "Critical", major: "Major", minor: "Minor", warning: "Warning" },
  alarm_status: { active_unack: "Unacknowledged", active_ack: "Acknowledged",
                  cleared_unack: "Cleared, unacknowledged", cleared: "Cleared" },
  field: { open: "Open", tilt_deg: "Tilt", water_level_cm: "Water below cover", battery_pct: "Battery",
           depth_cm: "Water depth", on: "Lamp on", current_a: "Current", fault: "Fault", fill_pct: "Fill level",
           lel_pct: "Gas (LEL)", smoke: "Smoke", pm25: "PM2.5", pm10: "PM10", db: "Noise",
           tilt_x_deg: "Tilt X", tilt_y_deg: "Tilt Y", seconds: "Interval", level_pct: "Level" },
  rule: { cover_open: "Cover open", cover_tilted: "Cover tilted", well_water_high: "Water high in the well",
          battery_low: "Battery low", silent: "Device offline", waterlogged: "Road waterlogged",
          deep_water: "Water too deep", rising_fast: "Water rising fast", lamp_fault: "Lamp fault",
          lamp_dark: "Lamp on without current", bin_full: "Bin full", gas_high: "Gas high limit",
          gas_low: "Gas low limit", smoke: "Smoke alarm", pm25_heavy: "PM2.5 heavy pollution",
          pm10_dust: "PM10 dust over limit", noise_high: "Noise over limit", tilt_x: "Tilt X over limit",
          tilt_y: "Tilt Y over limit", tilt_moving: "Tilt changing fast" },
  command: { reset: "Reset sensor", set_interval: "Set report interval", switch: "Switch lamp", dim: "Dim",
             silence: "Silence" },
};
const NAMES_ZH = {
  state: { verifying: "核实中", reported: "待立案", filed: "已立案", not_filed: "不予立案", dispatched: "已派遣",
           in_progress: "处置中", suspended: "挂账", handled: "处置完成", checking: "核查中", checked: "核查通过",
           closed: "已结案", void: "作废" },
  action: { report: "上报", merged_in: "合并并入" },
  role: { admin: "系统管理员", leader: "领导", commander: "指挥长", shift_lead: "值班长", operator: "受理员",
          dispatcher: "派遣员", department: "专业部门", inspector: "监督员", public: "公众" },
  source: { inspector: "监督员上报", public: "公众举报", hotline: "12345热线", device: "设备告警", video: "视频发现" },
  severity: { critical: "紧急", major: "重要", minor: "次要", warning: "提示" },
  alarm_status: { active_unack: "未确认", active_ack: "已确认", cleared_unack: "已恢复未确认", cleared: "已恢复" },
  // The catalog's own Chinese labels, but for command parameters it leaves unlabelled.
  field: { on: "开灯", seconds: "上报间隔", level_pct: "亮度" }, rule: {}, command: {},
};
let LANG = localStorage.getItem("citygrid.lang") || "zh";

function t(key) { return (STRINGS[LANG] && STRINGS[LANG][key]) || STRINGS.zh[key] || key; }

function named(kind, code, serverName) {
  if (LANG === "en") return NAMES_EN[kind][code] || serverName || code;
  // The server's name unless it only echoed the code back (e.g. the 'report' entry).
  return (serverName && serverName !== code ? serverName : NAMES_ZH[kind][code]) || code;
}
function stateName(code, serverName) { return named("state", code, serverName); }
function actionName(code, serverName) { return named("action", code, serverName); }
function roleName(code, serverName) { return named("role", code, serverName); }
function sourceName(code) { return named("source", code); }

function applyLanguage() {
  document.documentElement.lang = LANG === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  const button = document.getElementById("lang");
  if (button) button.textContent = t("switch");
}

document.addEventListener("DOMContentLoaded", () => {
  applyLanguage();
  document.getElementById("lang").addEventListener("click", () => {
    LANG = LANG === "zh" ? "en" : "zh";
    localStorage.setItem("citygrid.lang", LANG);
    applyLanguage();
    document.dispatchEvent(new Event("citygrid:language"));
  });
});
