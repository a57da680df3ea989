"""The daily attendance report (考勤日报) as CSV (UTF-8 with a BOM, so Excel reads the
Chinese) and as a printable, self-contained HTML page (Jinja2; nothing loaded from
anywhere). Chinese by default, English with lang="en"."""
from __future__ import annotations

import csv
import datetime as dt
import io

from jinja2 import Environment, select_autoescape

from devices.attendance import ALARM_KINDS
from gis.errors import Invalid
from workflows.cases import LOCAL_TZ

LANGS = ("zh", "en")

TEXT = {
    "zh": {
        "title": "考勤与巡查覆盖日报", "all_depts": "全部部门", "date": "日期", "dept": "部门", "unit": "巡查单元",
        "kind": "类型", "start": "班次开始", "end": "班次结束", "first_in": "到岗时间", "last_in": "离岗时间",
        "status": "考勤状态", "late_min": "迟到(分钟)", "early_min": "早退(分钟)", "minutes_inside": "在岗时长(分钟)",
        "distance_km": "巡查里程(公里)", "grids": "到访网格/责任网格", "coverage": "覆盖率", "alarms": "告警合计",
        "per_grid": "网格停留", "minutes": "分钟", "missed": "未到网格", "shifts": "班次", "none": "当日没有班次。",
        "rules": "规则：到岗宽限 {late} 分钟；提前离岗超过 {early} 分钟记早退；两次定位间隔最多计 {gap} 分钟；"
                 "只计有效定位。",
        "generated": "生成时间", "mean_coverage": "平均覆盖率", "in_progress": "进行中",
        "statuses": {"ok": "正常", "late": "迟到", "early": "早退", "late_early": "迟到早退", "absent": "缺勤",
                     "pending": "未开始"},
        "kinds": {"inspector": "监督员", "officer": "执法队员", "vehicle": "巡查车辆", "team": "巡查组"},
        "alarm_kinds": {"out_of_area": "越界", "stationary": "静止", "offline": "离线", "sos": "求助"},
    },
    "en": {
        "title": "Daily attendance and patrol coverage", "all_depts": "all departments", "date": "Date",
        "dept": "Department", "unit": "Unit", "kind": "Kind", "start": "Shift start", "end": "Shift end",
        "first_in": "First in area", "last_in": "Last in area", "status": "Status", "late_min": "Late (min)",
        "early_min": "Early (min)", "minutes_inside": "In area (min)", "distance_km": "Distance (km)",
        "grids": "Grids visited / area grids", "coverage": "Coverage", "alarms": "Alarms",
        "per_grid": "Time per grid", "minutes": "min", "missed": "Grids not visited", "shifts": "Shifts",
        "none": "No shifts on this day.",
        "rules": "Rules: {late} min grace to arrive; leaving more than {early} min early is early leave; "
                 "an interval between two fixes counts at most {gap} min; good fixes only.",
        "generated": "Generated", "mean_coverage": "Mean coverage", "in_progress": "in progress",
        "statuses": {"ok": "OK", "late": "Late", "early": "Early leave", "late_early": "Late and early leave",
                     "absent": "Absent", "pending": "Not started"},
        "kinds": {"inspector": "inspector", "officer": "officer", "vehicle": "vehicle", "team": "team"},
        "alarm_kinds": {"out_of_area": "out of area", "stationary": "stationary", "offline": "offline",
                        "sos": "SOS"},
    },
}


def _text(lang: str) -> dict:
    if lang not in TEXT:
        raise Invalid(f"lang must be one of {', '.join(LANGS)}, not {lang!r}")
    return TEXT[lang]


def _hm(iso: str | None, day: str | None = None) -> str:
    """Local time as HH:MM, with the date when it is not the report's day."""
    if not iso:
        return ""
    t = dt.datetime.fromisoformat(iso).astimezone(LOCAL_TZ)
    return t.strftime("%H:%M") if t.date().isoformat() == day else t.strftime("%m-%d %H:%M")


def _grid_times(row: dict, t: dict) -> str:
    return "; ".join(f"{g['name'] or ''} {g['code']} {g['minutes']:.1f}{t['minutes']}".strip() for g in row["grids"])


def _status(row: dict, t: dict) -> str:
    label = t["statuses"][row["status"]]
    return label if row["ended"] or row["status"] == "pending" else f"{label} ({t['in_progress']})"


def _cells(report: dict, t: dict) -> list[list]:
    day = report["date"]
    out = []
    for r in report["shifts"]:
        out.append([
            (r["dept"] or {}).get("name", ""), r["unit"]["name"], t["kinds"].get(r["unit"]["kind"], r["unit"]["kind"]),
            _hm(r["starts_at"], day), _hm(r["ends_at"], day), _hm(r["first_inside_at"], day),
            _hm(r["last_inside_at"], day), _status(r, t), r["late_minutes"], r["early_minutes"],
            r["minutes_inside"], f"{r['distance_km']:.2f}", f"{r['grids_visited']}/{r['area_grids']}",
            "" if r["coverage_pct"] is None else f"{r['coverage_pct']:.1f}%",
            *(r["alarms"][k] for k in ALARM_KINDS), r["alarm_total"], _grid_times(r, t),
        ])
    return out


def _header(t: dict) -> list[str]:
    return [t["dept"], t["unit"], t["kind"], t["start"], t["end"], t["first_in"], t["last_in"], t["status"],
            t["late_min"], t["early_min"], t["minutes_inside"], t["distance_km"], t["grids"], t["coverage"],
            *(t["alarm_kinds"][k] for k in ALARM_KINDS), t["alarms"], t["per_grid"]]


def to_csv(report: dict, lang: str = "zh") -> bytes:
    """One row per shift, times in local time (Asia/Shanghai)."""
    t = _text(lang)
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    out.writerow(_header(t))
    out.writerows(_cells(report, t))
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


_PAGE = """<!doctype html>
<html lang="{{ 'zh-CN' if lang == 'zh' else 'en' }}">
<head>
<meta charset="utf-8">
<title>{{ title }}</title>
<style>
  @page { size: A4 landscape; margin: 12mm; }
  body { font-family: "Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif; color: #1d2733;
         font-size: 12px; margin: 16px; }
  h1 { font-size: 18px; margin: 0 0 6px; }
  .meta, .rules { color: #5a6673; margin: 4px 0 10px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { border: 1px solid #b9c2cc; padding: 3px 5px; vertical-align: top; }
  th { background: #e8eef4; font-weight: 600; }
  td.n { text-align: right; white-space: nowrap; }
  tr { page-break-inside: avoid; }
  .st-late, .st-early, .st-late_early { color: #a15c00; font-weight: 600; }
  .st-absent { color: #b00020; font-weight: 600; }
  .grids { font-size: 11px; color: #37424d; }
  .summary td { border: 0; padding: 0 14px 0 0; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<p class="meta">{{ t.date }}：{{ report.date }} · {{ t.dept }}：{{ dept_name }} · {{ t.generated }}：{{ generated }}</p>
<table class="summary"><tr>
  <td>{{ t.shifts }} {{ s.shifts }}</td>
  {% for k in statuses %}{% if s[k] %}<td>{{ t.statuses[k] }} {{ s[k] }}</td>{% endif %}{% endfor %}
  <td>{{ t.minutes_inside }} {{ s.minutes_inside }}</td>
  <td>{{ t.distance_km }} {{ '%.2f' % s.distance_km }}</td>
  {% if s.mean_coverage_pct is not none %}<td>{{ t.mean_coverage }} {{ '%.1f' % s.mean_coverage_pct }}%</td>{% endif %}
  <td>{{ t.alarms }} {{ s.alarm_total }}</td>
</tr></table>
{% if rows %}
<table>
<thead><tr>{% for h in header[:-1] %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>
{% for r, cells in rows %}
<tr>
  {% for c in cells[:-1] %}<td{% if loop.index0 == 7 %} class="st-{{ r.status }}"{% elif loop.index0 >= 8 %} class="n"{% endif %}>{{ c }}</td>{% endfor %}
</tr>
{% if r.grids or r.grids_missed %}
<tr><td colspan="{{ header|length - 1 }}" class="grids">
  {% if r.grids %}{{ t.per_grid }}：{% for g in r.grids %}{{ g.name or '' }} {{ g.code }} {{ '%.1f' % g.minutes }}{{ t.minutes }}{% if not loop.last %}；{% endif %}{% endfor %}{% endif %}
  {% if r.grids_missed %}{% if r.grids %}<br>{% endif %}{{ t.missed }}：{{ r.grids_missed|join('、') }}{% endif %}
</td></tr>
{% endif %}
{% endfor %}
</tbody>
</table>
{% else %}
<p>{{ t.none }}</p>
{% endif %}
<p class="rules">{{ rules }}</p>
</body>
</html>
"""

_env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
_template = _env.from_string(_PAGE)


def to_html(report: dict, lang: str = "zh", now: dt.datetime | None = None) -> str:
    t = _text(lang)
    dept_name = report["dept"]["name"] if report["dept"] else t["all_depts"]
    r = report["rules"]
    return _template.render(
        lang=lang, t=t, report=report, s=report["summary"], statuses=list(t["statuses"]),
        title=f"{t['title']} — {dept_name} — {report['date']}", dept_name=dept_name,
        header=_header(t), rows=list(zip(report["shifts"], _cells(report, t))),
        generated=(now or dt.datetime.now(dt.timezone.utc)).astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M"),
        rules=t["rules"].format(late=f"{r['late_grace_minutes']:g}", early=f"{r['early_leave_minutes']:g}",
                                gap=f"{r['presence_gap_minutes']:g}"))


def file_name(report: dict, ext: str) -> str:
    """ASCII only (the department is named by id), safe in a Content-Disposition header."""
    dept = f"-dept{report['dept']['id']}" if report["dept"] else ""
    return f"attendance-{report['date']}{dept}.{ext}"
