"""The after-action report's words (评估报告用语) in zh-CN and English.

The template is written in Chinese; `Words.tr` gives each label in the reader's language,
from EN below (tests/command/test_report_words.py checks every label has one). The report's
own data — titles, plan and task names, places, timeline messages — are the incident's words
and stay as written, as they do on /incidents."""
from __future__ import annotations

import datetime as dt
from typing import Literal

from workflows import dispatch
from workflows.after_action import MILESTONES, SCORE_PARTS
from workflows.alerts import MSG_NAMES, STATE_NAMES
from workflows.cases import LOCAL_TZ
from workflows.incidents import level_name
from workflows.plans import emergency_names_en, resource_types

Lang = Literal["zh", "en"]

EN = {
    "【演练】": "[DRILL]", "评估报告": "after-action report", "突发事件评估报告": "After-action report",
    "地点": "Place", "网格": "grid", "经纬度": "lon/lat", "影响半径": "affected radius", "米": "m",
    "报告人": "Reported by", "报告时间": "Reported", "关闭时间": "Closed", "报告生成": "Report made",
    "处置总用时": "Total time", "任务（按时／超时）": "Tasks (on time / late)",
    "豁免／未完成／取消": "Waived / not done / cancelled", "调度指令": "Dispatch orders", "公众预警": "Public warnings",
    "演练评分": "Drill score", "关键时间节点": "Milestones", "节点": "Milestone", "时间": "Time",
    "距报告用时": "Since reported", "报告": "Reported", "响应级别变化": "Level changes", "级别": "Level",
    "调整前": "Before", "理由": "Reason", "报告时级别": "the level reported", "操作人": "By",
    "启动的预案": "Plans started", "预案": "Plan",
    "版本": "Version", "方式": "How", "启动人": "Started by", "启动时间": "Started", "自动": "automatic",
    "手动": "by hand", "未启动预案。": "No plan was started.", "任务完成情况": "Tasks",
    "共 {total} 项：按时 {on_time}，超时 {late}，豁免 {waived}，未完成 {not_done}，取消 {cancelled}；"
    "必办 {mandatory} 项中完成 {mandatory_done}、豁免 {mandatory_waived}；督办 {escalated} 次。":
        "{total} in all: {on_time} on time, {late} late, {waived} waived, {not_done} not done, {cancelled} cancelled;"
        " of {mandatory} mandatory, {mandatory_done} done and {mandatory_waived} waived; escalations: {escalated}.",
    "任务": "Task", "岗位／角色": "Post / role", "负责人": "Owner", "时限": "Due", "完成时间": "Finished",
    "结果": "Outcome", "超时": "Late by", "豁免理由／备注": "Waiver reason / note", "（必办）": "(mandatory)",
    "（已督办）": " (escalated)", "资源调度": "Resources dispatched", "资源": "Resource", "类型": "Type",
    "数量": "Qty", "下达": "Ordered", "确认（用时）": "Acknowledged (time taken)", "到场": "Arrived", "归队": "Released",
    "状态": "Status", "，超时未确认已上报": ", not acknowledged in time, escalated", "资源类型": "Resource type",
    "调度次数": "Orders", "合计数量": "Total quantity", "未调度资源。": "No resources were dispatched.",
    "性质": "Actual / exercise", "标题": "Headline", "发布时间": "Sent", "签发人": "Decided by",
    "未发布公众预警。": "No public warning was issued.", "处置评估": "Assessment",
    "真实事件不计分：下表只列出与演练评分相同的各项指标，供复盘参考。":
        "A real incident is not scored: the table lists the figures a drill is scored on, for the review.",
    "评分项": "Criterion", "权重": "Weight", "实测": "Measured", "得分": "Points", "合计": "Total",
    "事件位置图": "Map", "时间轴": "Timeline", "内容": "Message",
    "红点：事件位置；红色虚线：影响范围；蓝色方块：调度的资源；灰框：涉及的单元网格（EPSG:3857 投影，上北下南）。":
        "Red dot: the incident; dashed red: the affected area; blue squares: resources dispatched;"
        " grey outlines: the unit grids touched (EPSG:3857, north up).",
    "PDF 暂时无法生成，请改用 HTML 版打印：": "The PDF cannot be made just now; print the HTML version instead: ",
}

# The Chinese names of the codes the report data carries (the task outcomes are the report's
# own; the rest come from the modules that own them)…
OUTCOMES = {"on_time": "按时完成", "late": "超时完成", "waived": "已豁免", "not_done": "未完成", "cancelled": "已取消"}
NAMES_ZH = {
    "outcome": OUTCOMES, "milestone": dict(MILESTONES), "order": dispatch.STATUS_NAMES,
    "cap_status": {"Actual": "实际", "Exercise": "演练"}, "msg_type": MSG_NAMES, "alert_state": STATE_NAMES,
    "part": {key: name for key, _weight, name in SCORE_PARTS},
}
# …and in English.
NAMES_EN = {
    "outcome": {"on_time": "on time", "late": "late", "waived": "waived", "not_done": "not done",
                "cancelled": "cancelled"},
    "milestone": {"verified": "Verified", "activated": "Plan started", "first_dispatch": "First dispatch",
                  "contained": "Contained", "closed": "Closed"},
    "order": {"sent": "sent", "acknowledged": "acknowledged", "arrived": "arrived", "released": "released",
              "refused": "refused"},
    "cap_status": {"Actual": "Actual", "Exercise": "Exercise"},
    "msg_type": {"Alert": "Alert", "Update": "Update", "Cancel": "Cancel"},
    "alert_state": {"draft": "awaiting approval", "issued": "issued", "rejected": "rejected",
                    "superseded": "superseded", "cancelled": "cancelled"},
    "part": {"tasks_on_time": "Tasks done on time", "mandatory_done": "Mandatory steps done (not waived)",
             "activation_time": "Time to start the plan (target: 10 min)",
             "dispatch_ack": "Orders acknowledged in time", "public_warning": "Public warning issued"},
}


class Words:
    """Everything the template says, in one language."""

    def __init__(self, lang: Lang = "zh"):
        self.en = lang == "en"
        self.html_lang = "en" if self.en else "zh-CN"
        self.colon, self.slash = (": ", " / ") if self.en else ("：", "／")
        # Chinese readers take Beijing time as read; others are told.
        self.zone = "" if not self.en else f" · times in UTC{dt.datetime.now(LOCAL_TZ).strftime('%z')[:3]} ({LOCAL_TZ})"

    def tr(self, zh: str) -> str:
        return EN[zh] if self.en else zh

    def paren(self, text: object) -> str:
        return f" ({text})" if self.en else f"（{text}）"

    def name(self, kind: str, code: str | None) -> str:
        """A code's name (an unknown code as it is)."""
        return (NAMES_EN if self.en else NAMES_ZH)[kind].get(code, code or "")

    def category(self, name: str) -> str:
        return emergency_names_en()["names"].get(name, name) if self.en else name

    def level(self, level: str) -> str:
        """一般（Ⅳ级） / General (level Ⅳ), as workflows.incidents.level_name says it in Chinese."""
        return f"{emergency_names_en()['levels'][level]} (level {level})" if self.en else level_name(level)

    def resource_type(self, code: str, zh_name: str) -> str:
        return resource_types().get(code, {}).get("name_en", zh_name) if self.en else zh_name

    def unit(self, zh_unit: str | None) -> str:
        """The counting word (辆, 袋…) after a quantity; English counts bare."""
        return "" if self.en or not zh_unit else f" {zh_unit}"

    def measured(self, part: dict) -> str:
        """A score part's measured figure (the report says it in Chinese; fractions read the
        same in English)."""
        key, value = part["key"], part["value"]
        if not self.en:
            return part["measured"]
        if key == "activation_time":
            return "not started" if value is None else f"{value / 60:.1f} min"
        if key == "dispatch_ack" and value is None:
            return "no orders"
        if key == "public_warning":
            return f"{value} sent"
        return part["measured"]

    @staticmethod
    def when(at: dt.datetime | None) -> str:
        return "—" if at is None else at.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M:%S")

    def duration(self, seconds: int | None) -> str:
        """1小时5分20秒 / 1 h 5 min 20 s; — when it never happened."""
        if seconds is None:
            return "—"
        sign, s = ("-" if seconds < 0 else ""), abs(int(seconds))
        h, m, sec = s // 3600, s % 3600 // 60, s % 60
        units = ("h", "min", "s") if self.en else ("小时", "分", "秒")
        shown = [(h, h > 0), (m, m > 0 or h > 0), (sec, sec > 0 or not (h or m))]
        return sign + (" " if self.en else "").join(
            f"{n}{' ' if self.en else ''}{unit}" for (n, show), unit in zip(shown, units) if show)
