"""综合评价: the formula evaluator, grades, exports, and every indicator of a walked week
checked against values computed by hand."""
from __future__ import annotations

import ast
import csv
import datetime as dt
import io
from pathlib import Path

import openpyxl
import pytest
from psycopg.types.json import Jsonb

from gis.catalog import read_catalog
from tests.workflows.conftest import CST
from workflows import evaluation
from workflows.case_rules import ActionRequest
from workflows.cases import act
from workflows.evaluation import Definitions, Evaluation, Formula, FormulaError, evaluate
from workflows.timers import fire_due

P1 = (113.3405, 27.0005)      # grid 430223001001001 — the inspector's community 430223001001
P2 = (113.3415, 27.0005)      # grid 430223001001002 — same community
P3 = (113.3425, 27.0005)      # grid 430223001002001 — community 430223001002, nobody's patrol area
MARCH = (dt.datetime(2026, 3, 1, tzinfo=CST), dt.datetime(2026, 4, 1, tzinfo=CST))
AS_OF = dt.datetime(2026, 3, 10, tzinfo=CST)


def at(h: int, m: int = 0, day: int = 2) -> dt.datetime:
    return dt.datetime(2026, 3, day, h, m, tzinfo=CST)


# ================================================================ formulas
def test_formula_evaluates_the_catalog_forms():
    score = Formula.parse("有效上报率*0.4 + (1-漏报率)*0.2 + 按时核实率*0.2 + 按时核查率*0.2")
    values = {"有效上报率": 0.8, "漏报率": 0.2, "按时核实率": 0.5, "按时核查率": 0.75}
    assert score.evaluate(values) == pytest.approx(0.73)
    assert score.score(values) == pytest.approx(0.73)
    assert score.names == {"有效上报率", "漏报率", "按时核实率", "按时核查率"}
    assert Formula.parse("按期处置数 / 应处置数").evaluate({"按期处置数": 2, "应处置数": 3}) == pytest.approx(2 / 3)
    assert Formula.parse("立案数 - 作废数").evaluate({"立案数": 2, "作废数": 1}) == 1
    assert Formula.parse("-(a - b) * 2 + +c").evaluate({"a": 5, "b": 3, "c": 1}) == -3


@pytest.mark.parametrize("text, message", [
    ("__import__('os')", "function calls are not allowed"),
    ("(lambda: 1)()", "function calls are not allowed"),
    ("有效上报率.real", "attribute access is not allowed"),
    ("().__class__", "attribute access is not allowed"),
    ("x[0]", "indexing is not allowed"),
    ("a ** 2", r"the power operator \*\* is not allowed"),
    ("a // 2", "// is not allowed"),
    ("a < b", "comparisons are not allowed"),
    ("a if b else c", "if-else is not allowed"),
    ("'text'", "the constant 'text' is not allowed"),
    ("True * 2", "the constant True is not allowed"),
    ("__builtins__", "leading underscore"),
    ("[1, 2]", "List syntax is not allowed"),
    ("a; b", "cannot be read"),
    ("1 +", "cannot be read"),
    ("", "empty"),
])
def test_formula_refuses_anything_but_arithmetic(text, message):
    with pytest.raises(FormulaError, match=message) as e:
        Formula.parse(text)
    assert "numbers, indicator names, + - * / and parentheses" in str(e.value) or message in ("cannot be read", "empty")


def test_the_module_never_calls_eval():
    tree = ast.parse(Path(evaluation.__file__).read_text(encoding="utf-8"))
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert not called & {"eval", "exec", "compile", "__import__"}


def test_division_by_zero_is_undefined_and_scores_renormalise():
    assert Formula.parse("按期处置数 / 应处置数").evaluate({"按期处置数": 0, "应处置数": 0}) is None
    assert Formula.parse("1 - a / b").evaluate({"a": 1, "b": 0}) is None          # undefined spreads
    score = Formula.parse("按期处置率*0.6 + 处置率*0.2 + (1-返工率)*0.2")
    # 返工率 undefined (nothing handled): its 0.2 is left out, 0.6 and 0.2 scaled up to 1.0
    assert score.score({"按期处置率": 0.5, "处置率": 1.0, "返工率": None}) == pytest.approx((0.3 + 0.2) / 0.8)
    assert score.score({"按期处置率": None, "处置率": None, "返工率": None}) is None
    assert score.evaluate({"按期处置率": 0.5, "处置率": 1.0, "返工率": None}) is None   # the plain value is not
    # the weights keep their total: a formula weighted to 100 stays on 0–100
    assert Formula.parse("a*60 + b*40").score({"a": 1.0, "b": None}) == pytest.approx(100)
    # not a weighted sum: evaluated plainly
    assert Formula.parse("(a + b) / 2").score({"a": 1, "b": None}) is None
    with pytest.raises(FormulaError, match="unknown indicator"):
        Formula.parse("a + 漏报率").evaluate({"a": 1})


def test_definitions_refuse_unknown_names_and_cycles():
    with pytest.raises(FormulaError, match="监督员, 有效上报率 = .*unknown indicator.*有效数"):
        evaluation._ordered_formulas("监督员", {"有效上报率": "有效数 / 上报数"}, {"上报数"})
    with pytest.raises(FormulaError, match="depends on itself"):
        evaluation._ordered_formulas("值班长", {"x": "y + 1", "y": "x * 2"}, set())
    with pytest.raises(FormulaError, match="专业部门, score: .*function calls"):
        evaluation._ordered_formulas("专业部门", {"score": "max(1, 2)"}, set())
    ordered = evaluation._ordered_formulas("值班长", {"准确立案率": "准确立案数 / 立案数", "准确立案数": "立案数 - 作废数"},
                                           {"立案数", "作废数"})
    assert list(ordered) == ["准确立案数", "准确立案率"]


def test_grades_follow_the_catalog_bands():
    bands = sorted(((k, float(v[0]), float(v[1])) for k, v in read_catalog()["grades"].items()), key=lambda g: -g[1])
    defs = Definitions({}, bands, 100, [], [], [])
    assert [defs.grade(s) for s in (100, 90, 89.99, 75, 74.99, 60, 40, 39.99, 0)] == \
        ["A", "A", "B", "B", "C", "C", "D", "E", "E"]
    assert defs.grade(None) is None


def test_equal_scores_share_a_rank():
    rows = [{"code": c, "score": v} for c, v in (("b", 80.0), ("a", 90.0), ("c", 80.0), ("d", None), ("e", 0.0))]
    evaluation._rank(rows)
    assert [(r["code"], r["rank"]) for r in rows] == [("a", 1), ("b", 2), ("c", 2), ("e", 4), ("d", None)]


# ================================================================ exports
def _sample() -> Evaluation:
    rows = [{"id": 2, "code": "2", "name": "县城市管理和综合执法局", "rank": 1, "score": 73.33, "grade": "C",
             "indicators": {"应处置数": 3, "按期处置率": 0.6667, "平均处置时长": 9.14}},
            {"id": 1, "code": "1", "name": "攸县自来水公司", "rank": None, "score": None, "grade": None,
             "indicators": {"应处置数": 0, "按期处置率": None, "平均处置时长": None}}]
    return Evaluation("department", "专业部门", *MARCH, ["应处置数", "按期处置率", "平均处置时长"], {}, rows)


def test_csv_has_a_bom_chinese_header_and_percentages():
    body = evaluation.to_csv(_sample())
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows == [["排名", "编号", "名称", "应处置数", "按期处置率", "平均处置时长(小时)", "得分", "等级"],
                    ["1", "2", "县城市管理和综合执法局", "3", "66.67%", "9.14", "73.33", "C"],
                    ["", "1", "攸县自来水公司", "0", "", "", "", ""]]


def test_xlsx_keeps_numbers_as_numbers_and_rates_as_percentages():
    wb = openpyxl.load_workbook(io.BytesIO(evaluation.to_xlsx(_sample())))
    ws = wb.active
    assert ws.title == "专业部门综合评价"
    assert [c.value for c in ws[1]] == ["排名", "编号", "名称", "应处置数", "按期处置率", "平均处置时长(小时)", "得分", "等级"]
    first = ws[2]
    assert [c.value for c in first] == [1, "2", "县城市管理和综合执法局", 3, 0.6667, 9.14, 73.33, "C"]
    assert first[4].number_format == "0.00%" and first[6].number_format == "0.00"
    assert [c.value for c in ws[3]][3:] == [0, None, None, None, None]


# ================================================================ the walked week
def _walk(db, desk, people, new_case, photo):
    """Seven cases (see the test below for what happens to each)."""
    op, sl, disp, dept, insp = (people[r] for r in ("operator", "shift_lead", "dispatcher", "department", "inspector"))
    city = people["city_dept_id"]
    water = db.execute("SELECT id FROM department WHERE name = '攸县自来水公司'").fetchone()["id"]


    def do(cid, action, who, when, photos=(), **request):
        return act(db, desk, cid, action, who, ActionRequest(**request), photos=list(photos), now=when)

    def report(source, where, when=at(10)):
        return new_case(source=source, lon=where[0], lat=where[1], now=when).case["id"]

    a = report("inspector", P1)                      # A: on time all the way
    do(a, "file", op, at(10, 5))                     # 立案 due 10:15
    do(a, "dispatch", disp, at(10, 10), dept_id=city)   # 派遣 due 10:20; handling due 16:40
    do(a, "accept", dept, at(10, 20))
    do(a, "handle", dept, at(11), photos=[photo()])
    do(a, "send_check", op, at(11, 5))               # 核查派发 due 12:00
    do(a, "check_pass", insp, at(11, 30), photos=[photo()])   # 核查 due 14:35
    do(a, "close", sl, at(11, 40))                   # 结案 due 11:45

    b = report("inspector", P2)                      # B: reworked once, closed late
    do(b, "file", sl, at(10, 5))
    do(b, "dispatch", disp, at(10, 10), dept_id=city)
    do(b, "accept", dept, at(10, 20))
    do(b, "handle", dept, at(11), photos=[photo()])
    do(b, "send_check", op, at(11, 5))
    do(b, "check_fail", insp, at(11, 30), note="垃圾未清运干净")
    do(b, "handle", dept, at(15), photos=[photo()])  # still before 16:40
    do(b, "send_check", op, at(15, 5))
    do(b, "check_pass", insp, at(15, 20), photos=[photo()])
    do(b, "close", sl, at(15, 50))                   # 结案 due 15:35: late

    d = report("hotline", P3)                        # D: verified late, then rejected
    do(d, "confirm", insp, at(10, 40))               # 核实 due 10:30
    do(d, "reject", op, at(10, 45), note="不属于城管范围")

    e = report("inspector", P1)                      # E: filed, then voided
    do(e, "file", sl, at(10, 10))
    do(e, "void", sl, at(10, 12), note="重复上报")

    f = report("inspector", P2)                      # F: rejected
    do(f, "reject", op, at(10, 10), note="已自行处理")

    g = report("inspector", P1)                      # G: the water company never handles it
    do(g, "file", op, at(10, 5))
    do(g, "dispatch", disp, at(10, 10), dept_id=water)  # handling due 16:40

    c = report("public", P1)                         # C: a citizen's report (漏报), wrong department, late
    do(c, "confirm", insp, at(10, 20))               # 核实 due 10:30
    do(c, "file", op, at(10, 25))
    do(c, "dispatch", disp, at(10, 30), dept_id=water)
    do(c, "return", people["water_dept"], at(10, 35), note="不属于本部门")
    do(c, "dispatch", disp, at(11), dept_id=city)    # 派遣 due 10:50: late; handling due 17:30
    do(c, "accept", dept, at(11, 10))
    assert fire_due(db, now=at(17, 31)) == 4         # C's and G's handling warnings and escalations
    do(c, "handle", dept, at(8, 45, day=3), photos=[photo()])   # late
    do(c, "send_check", op, at(9, 50, day=3))        # 核查派发 due 09:45: late
    do(c, "check_pass", insp, at(11, day=3), photos=[photo()])  # 核查 due 10:50: late
    do(c, "close", sl, at(11, 10, day=3))            # 结案 due 11:15
    return {"city": city, "water": water, "c": c}


def _rows(db, desk, subject, period=MARCH, as_of=AS_OF):
    ev = evaluate(db, subject, *period, as_of=as_of, flow=desk.flow)
    return ev, {r["id"]: r for r in ev.rows}


def test_every_indicator_of_a_walked_week(db, desk, people, new_case, photo):
    ids = _walk(db, desk, people, new_case, photo)
    escalated = db.execute("SELECT count(*) AS n FROM case_transition WHERE case_id = %s AND action = 'escalate'",
                           (ids["c"],)).fetchone()["n"]
    assert escalated == 1

    # 监督员: reports A B E F G (F rejected); area filings A B C E G, of which C came from the public;
    # 核实 C on time, D late; 核查 A, B twice on time, C late.
    _, rows = _rows(db, desk, "inspector")
    me = rows[people["inspector"].id]
    assert me["indicators"] == {"上报数": 5, "有效上报数": 4, "立案数": 5, "漏报数": 1, "应核实数": 2, "按时核实数": 1,
                                "应核查数": 4, "按时核查数": 3, "有效上报率": 0.8, "按时核实率": 0.5, "按时核查率": 0.75,
                                "漏报率": 0.2}
    # 0.8×0.4 + (1−0.2)×0.2 + 0.5×0.2 + 0.75×0.2 = 0.73
    assert (me["score"], me["grade"], me["rank"]) == (73.0, "C", 1)

    # 受理员: filed A C G, rejected D F — all within 15 min; sent to check A, B, B on time, C late.
    _, rows = _rows(db, desk, "operator")
    me = rows[people["operator"].id]
    assert me["indicators"] == {"受理数": 5, "应核实派发数": 5, "按时核实派发数": 5, "应核查派发数": 4, "按时核查派发数": 3,
                                "受理数分值": 1.0, "核实按时派发率": 1.0, "核查按时派发率": 0.75}
    assert (me["score"], me["grade"]) == (91.25, "A")         # 0.25 + 0.40 + 0.75×0.35

    # 值班长: filed B and E (E voided); closed A on time, B late, C on time.
    _, rows = _rows(db, desk, "shift_lead")
    me = rows[people["shift_lead"].id]
    assert me["indicators"] == {"立案数": 2, "作废数": 1, "应立案数": 2, "按时立案数": 2, "应结案数": 3, "按时结案数": 2,
                                "准确立案数": 1, "按时立案率": 1.0, "准确立案率": 0.5, "按时结案率": 0.6667}
    assert (me["score"], me["grade"]) == (68.33, "C")         # 0.25 + 0.5×0.40 + ⅔×0.35

    # 派遣员: A B C(water) C(city) G; C's first dispatch came back (退回); C's second was late.
    _, rows = _rows(db, desk, "dispatcher")
    me = rows[people["dispatcher"].id]
    assert me["indicators"] == {"派遣数": 5, "返工数": 1, "应派遣数": 5, "按时派遣数": 4, "派遣数分值": 1.0,
                                "按时派遣率": 0.8, "准确派遣率": 0.8, "准确派遣数": 4}
    assert (me["score"], me["grade"]) == (84.0, "B")          # 0.2 + 0.8×0.4 + 0.8×0.4

    # 专业部门: the bureau handled A and B on time (B after rework) and C late (decided at its
    # 17:30 deadline); the water company's returned task does not count, G is overdue unhandled.
    ev, rows = _rows(db, desk, "department")
    assert ev.columns[:8] == ["应处置数", "处置数", "按期处置数", "超期处置数", "处置率", "按期处置率", "返工数", "返工率"]
    city, water = rows[ids["city"]], rows[ids["water"]]
    assert city["indicators"] == {"应处置数": 3, "处置数": 3, "按期处置数": 2, "超期处置数": 1, "超期未处置数": 0,
                                  "返工数": 1, "应结案数": 3, "按期结案数": 2, "处置率": 1.0, "按期处置率": 0.6667,
                                  "返工率": 0.3333, "按期结案率": 0.6667,
                                  "平均处置时长": 9.14}                 # (50 + 290 + 1305 min) / 3
    assert (city["score"], city["grade"], city["rank"]) == (73.33, "C", 1)   # ⅔×0.6 + 0.2 + ⅔×0.2
    assert water["indicators"] == {"应处置数": 1, "处置数": 0, "按期处置数": 0, "超期处置数": 0, "超期未处置数": 1,
                                   "返工数": 0, "应结案数": 1, "按期结案数": 0, "处置率": 0.0, "按期处置率": 0.0,
                                   "返工率": None, "按期结案率": 0.0, "平均处置时长": None}
    assert (water["score"], water["grade"], water["rank"]) == (0.0, "E", 2)   # 返工率 left out, still 0
    assert [r["id"] for r in ev.rows] == [ids["city"], ids["water"]]

    # Areas: community 001 has A B C E F G; community 002 only D (never filed: nothing to judge).
    _, rows = _rows(db, desk, "community")
    east = rows["430223001001"]
    assert east["indicators"] == {"上报数": 6, "立案数": 5, "结案数": 3, "按期结案数": 2, "应处置数": 4, "处置数": 3,
                                  "按期处置数": 2, "超期数": 2, "返工数": 1, "平均处置时长": 9.14, "结案率": 0.6,
                                  "按期结案率": 0.4, "按期处置率": 0.5, "返工率": 0.3333}
    assert (east["score"], east["grade"]) == (57.33, "D")     # 0.5×0.4 + 0.6×0.4 + ⅔×0.2
    west = rows["430223001002"]
    assert west["indicators"]["上报数"] == 1 and west["indicators"]["结案率"] is None
    assert (west["score"], west["grade"], west["rank"]) == (None, None, None)
    _, rows = _rows(db, desk, "street")
    assert (rows["430223001"]["score"], rows["430223001"]["indicators"]["上报数"]) == (57.33, 7)
    _, rows = _rows(db, desk, "grid")
    assert (rows["430223001001001"]["score"], rows["430223001001001"]["indicators"]["平均处置时长"]) == (53.33, 11.29)
    assert (rows["430223001001002"]["score"], rows["430223001001002"]["grade"]) == (80.0, "B")

    # A task counts where its outcome became known: C's late handling on Tuesday was decided
    # at Monday's deadline; its late 核查派发 and 核查 count on Tuesday.
    tuesday = (at(0, day=3), at(0, day=4))
    _, rows = _rows(db, desk, "department", tuesday)
    assert rows[ids["city"]]["indicators"]["应处置数"] == 0 and rows[ids["city"]]["score"] is None
    _, rows = _rows(db, desk, "operator", tuesday)
    me = rows[people["operator"].id]["indicators"]
    assert (me["受理数"], me["应核查派发数"], me["按时核查派发数"], me["受理数分值"]) == (0, 1, 0, None)
    # Before G's deadline has passed it is still running, not yet overdue.
    _, rows = _rows(db, desk, "department", as_of=at(16))
    assert rows[ids["water"]]["indicators"]["应处置数"] == 0

    # The weights are data: edit the catalog document in the database.
    body = db.execute("SELECT body FROM catalog_document").fetchone()["body"]
    body["evaluation"]["专业部门"]["score"] = "按期处置率*0.5 + 处置率*0.5"
    db.execute("UPDATE catalog_document SET body = %s", (Jsonb(body),))
    _, rows = _rows(db, desk, "department")
    assert (rows[ids["city"]]["score"], rows[ids["city"]]["grade"]) == (83.33, "B")
    body["evaluation"]["专业部门"]["score"] = "__import__('os').system('true')"
    db.execute("UPDATE catalog_document SET body = %s", (Jsonb(body),))
    with pytest.raises(FormulaError, match="专业部门, score.*function calls are not allowed"):
        _rows(db, desk, "department")
    body["evaluation"]["专业部门"].update(score="按期处置率", fields=["应处置数", "按其处置率"])   # a typo
    db.execute("UPDATE catalog_document SET body = %s", (Jsonb(body),))
    with pytest.raises(FormulaError, match="专业部门, fields: unknown indicator.*按其处置率"):
        _rows(db, desk, "department")


def test_without_matching_timers_the_escalations_decide(db, desk, people, new_case):
    """Each entry into a clocked state arms one stage_due timer; when a case's timers do not
    pair up with its entries, an 'escalate' recorded during the stage marks it late."""
    insp = people["inspector"]
    x = new_case(source="public", now=at(10)).case["id"]                  # 核实 due 10:30
    assert fire_due(db, now=at(10, 31)) == 2                               # warning + escalation
    act(db, desk, x, "confirm", insp, now=at(10, 40))
    y = new_case(source="public", lon=P2[0], lat=P2[1], now=at(10, 32)).case["id"]   # due 11:02
    act(db, desk, y, "confirm", insp, now=at(11, 10))                      # late, never escalated
    _, rows = _rows(db, desk, "inspector")
    assert rows[insp.id]["indicators"]["应核实数"] == 2 and rows[insp.id]["indicators"]["按时核实数"] == 0

    # Lose each case's first stage timer (as if the 核实 limit had been switched off then).
    db.execute("DELETE FROM case_timer WHERE id IN (SELECT min(id) FROM case_timer WHERE kind = 'stage_due'"
               " AND case_id IN (%s, %s) GROUP BY case_id)", (x, y))
    _, rows = _rows(db, desk, "inspector")
    assert rows[insp.id]["indicators"]["应核实数"] == 2 and rows[insp.id]["indicators"]["按时核实数"] == 1   # y


def test_bad_subject_and_period_are_refused(desk):
    # refused before the database is asked anything
    with pytest.raises(evaluation.Invalid, match="unknown evaluation subject 'mayor'"):
        evaluate(None, "mayor", *MARCH, flow=desk.flow)
    with pytest.raises(evaluation.Invalid, match="the period is empty"):
        evaluate(None, "grid", MARCH[1], MARCH[0], flow=desk.flow)
    with pytest.raises(evaluation.Invalid, match="need a time zone"):
        evaluate(None, "grid", dt.datetime(2026, 3, 1), MARCH[1], flow=desk.flow)
