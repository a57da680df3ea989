"""Plan documents (应急预案): the shipped plans load, and a plan that could not enforce itself
is refused with every problem named by line and field."""
from __future__ import annotations

import pytest

from workflows.plans import LEVELS, PLANS_DIR, PlanRefused, load_plan_file, parse_plan, shipped_plans

GOOD = (PLANS_DIR / "waterlogging.yaml").read_text(encoding="utf-8")


def test_the_shipped_plans_load_and_a_higher_level_runs_the_lower_levels_steps_too():
    plans = {p.id: p for p in shipped_plans()}
    assert "waterlogging" in plans
    water = plans["waterlogging"]
    assert water.covers("自然灾害", "水旱灾害") and not water.covers("事故灾难", "火灾")
    four, three = water.steps_for("Ⅳ"), water.steps_for("Ⅲ")
    assert [s.id for s in four] == ["verify", "pumps", "traffic_control", "inform"]
    assert [s.id for s in three][:4] == [s.id for s in four] and len(three) == len(four) + 3
    pumps = next(s for s in four if s.id == "pumps")
    assert pumps.depends_on == ("verify",) and ("pump_truck", 2) in pumps.resources and pumps.deadline_min == 30
    for plan in plans.values():
        assert "commander" in plan.organisation and set(plan.levels) <= set(LEVELS)


def _refused(text: str) -> list[str]:
    with pytest.raises(PlanRefused) as refused:
        parse_plan(text, "test.yaml")
    return refused.value.problems


def test_a_circle_of_dependencies_is_refused_naming_it():
    # pumps already waits for verify; making verify wait for pumps closes the circle.
    assert "depends_on: [verify]\n        resources: [{type: pump_truck" in GOOD
    text = GOOD.replace("        title: 现场核实积水点位、深度和范围并回传照片\n",
                        "        title: 现场核实积水点位、深度和范围并回传照片\n        depends_on: [pumps]\n", 1)
    problems = _refused(text)
    [circle] = [p for p in problems if "circle" in p]
    assert "verify" in circle and "pumps" in circle


@pytest.mark.parametrize("change, words, at_change", [
    (("role: traffic", "role: army"), "unknown role 'army'", True),
    (("{type: mobile_pump, count: 1}", "{type: hovercraft, count: 1}"), "unknown resource type 'hovercraft'", True),
    (("deadline_min: 45", "deadline_min: -5"), "must be after activation", True),
    (("deadline_min: 45", "deadline_min: soon"), "a number", True),
    (("notify: [commander]\n        checklist", "notify: [mayor]\n        checklist"), "unknown role 'mayor'", True),
    (("depends_on: [rescue_trapped]", "depends_on: [nowhere]"), "no step 'nowhere'", True),
    (("subtypes: [水旱灾害, 气象灾害]", "subtypes: [火灾]"), "not a subtype", True),
    (("  Ⅲ:\n", "  Ⅴ:\n"), "not a response level", True),
    (("urgency: Immediate", "urgency: Now"), "CAP 1.2", True),
    (("expires_min: 360", "expires_min: 0"), "stays in force", True),
    (("version: 1", "version: one"), "whole number", True),
    (("commander: {post: 县应急指挥长}", "chief: {post: 县应急指挥长}"), "needs a commander role", False),
    (("deadline_min: 60\n        depends_on: [verify]", "deadline_min: 10\n        depends_on: [verify]"),
     "which must be done first", False),
])
def test_a_broken_plan_is_refused_with_the_line_and_field(change, words, at_change):
    old, new = change
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    hit = [p for p in _refused(text) if words in p]
    assert len(hit) == 1, _refused(text)
    assert hit[0].startswith("line ")
    if at_change:                                       # the line the change is on
        line = next(n for n, row in enumerate(text.splitlines(), 1) if new.split("\n")[0].strip() in row)
        assert hit[0].startswith(f"line {line},"), (line, hit[0])


def test_every_problem_is_listed_and_bad_yaml_is_named():
    text = GOOD.replace("role: traffic", "role: army").replace("deadline_min: 45", "deadline_min: 0")
    problems = _refused(text)              # the role, the deadline, and that deadline coming before its dependency's
    assert len(problems) == 3 and sum("must be done first" in p for p in problems) == 1
    [problem] = _refused("id: x\nname: [unclosed\n")
    assert problem.startswith("line 3, column 1: not valid YAML")
    assert "a plan is a mapping" in _refused("- just a list\n")[0]


def test_a_step_may_not_depend_on_a_higher_level():
    text = GOOD.replace("        depends_on: [verify]\n        resources: [{type: barrier_set",
                        "        depends_on: [rescue_trapped]\n        resources: [{type: barrier_set", 1)
    assert any("higher level Ⅲ" in p for p in _refused(text))


def test_citygrid_plans_validate_exits_non_zero_with_the_errors(tmp_path):
    from typer.testing import CliRunner

    from command.cli import app
    from tests.conftest import TEST_SECRET

    broken = tmp_path / "broken.yaml"
    broken.write_text(GOOD.replace("role: traffic", "role: army").replace("deadline_min: 45", "deadline_min: -1"),
                      encoding="utf-8")
    env = {"CITYGRID_SECRET_KEY": TEST_SECRET, "CITYGRID_DEMO": "0"}
    ok = CliRunner().invoke(app, ["plans", "validate", str(PLANS_DIR / "waterlogging.yaml")], env=env)
    assert ok.exit_code == 0 and "ok — 攸县城市内涝应急预案 v1, levels Ⅳ/Ⅲ, 7 steps" in ok.output
    bad = CliRunner().invoke(app, ["plans", "validate", str(broken), str(tmp_path / "missing.yaml")], env=env)
    assert bad.exit_code == 1
    assert "3 problem(s)" in bad.output and "unknown role 'army'" in bad.output and "must be after activation" in bad.output
    assert "missing.yaml: cannot read it" in bad.output


@pytest.mark.parametrize("old, new, where", [
    ("version: 1\n", "version: 1\n1: one\nextra: two\n", ["line 4, 1:", "line 5, extra:"]),
    ("        title: 现场核实积水点位、深度和范围并回传照片\n",
     "        title: 现场核实积水点位、深度和范围并回传照片\n        2: x\n        zz: y\n", ["steps.0.2:", "steps.0.zz:"]),
    ("  urgency: Immediate\n", "  urgency: Immediate\n  3: x\n  yy: y\n", ["warning.3:", "warning.yy:"]),
])
def test_unknown_keys_mixing_numbers_and_text_are_each_named(old, new, where):
    assert old in GOOD
    problems = [p for p in _refused(GOOD.replace(old, new, 1)) if "unknown field" in p]
    assert len(problems) == 2 and all(w in p for w, p in zip(where, problems)), problems


def test_a_plan_file_that_is_not_utf8_is_refused_by_name(tmp_path):
    from typer.testing import CliRunner

    from command.cli import app
    from tests.conftest import TEST_SECRET

    gbk = tmp_path / "gbk.yaml"
    gbk.write_bytes(GOOD.encode("gbk"))                     # a plan saved by an editor set to GBK
    with pytest.raises(PlanRefused, match="not UTF-8 text"):
        load_plan_file(gbk)
    env = {"CITYGRID_SECRET_KEY": TEST_SECRET, "CITYGRID_DEMO": "0"}
    bad = CliRunner().invoke(app, ["plans", "validate", str(gbk), str(PLANS_DIR / "waterlogging.yaml")], env=env)
    assert bad.exit_code == 1, bad.output
    assert f"{gbk}: 1 problem(s)" in bad.output and "not UTF-8 text" in bad.output and "save the plan as UTF-8" in bad.output
    assert "waterlogging.yaml: ok" in bad.output                 # the other files are still checked
