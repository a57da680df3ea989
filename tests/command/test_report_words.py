"""The after-action report's words: every label the template says has its English, and the
figures read right in both languages."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from command.report_words import EN, NAMES_EN, NAMES_ZH, Words
from workflows.plans import emergency_catalog, emergency_names_en, resource_types

TEMPLATE = Path(__file__).parents[2] / "command/web/templates/after_action.html"


def test_every_label_in_the_template_has_its_english():
    labels = re.findall(r"w\.tr\('([^']+)'\)", TEMPLATE.read_text(encoding="utf-8"))
    assert len(labels) > 60
    assert sorted(set(labels) - set(EN)) == []
    assert all(Words("zh").tr(label) == label for label in labels)


def test_every_code_category_level_and_resource_type_has_its_english():
    assert set(NAMES_EN) == set(NAMES_ZH)
    for kind, names in NAMES_ZH.items():
        assert set(names) == set(NAMES_EN[kind]), kind
    assert all(t.get("name_en") for t in resource_types().values())
    catalog, english = emergency_catalog(), emergency_names_en()
    chinese = set(catalog["categories"]) | {s for subs in catalog["categories"].values() for s in subs}
    assert sorted(chinese - set(english["names"])) == [] and sorted(set(english["names"]) - chinese) == []
    assert set(english["levels"]) == set(catalog["levels"])


@pytest.mark.parametrize(("seconds", "zh", "en"), [
    (None, "—", "—"), (0, "0秒", "0 s"), (45, "45秒", "45 s"), (60, "1分", "1 min"),
    (3920, "1小时5分20秒", "1 h 5 min 20 s"), (7200, "2小时0分", "2 h 0 min"), (-75, "-1分15秒", "-1 min 15 s")])
def test_durations(seconds, zh, en):
    assert (Words("zh").duration(seconds), Words("en").duration(seconds)) == (zh, en)


def test_names_levels_and_measured_figures():
    zh, en = Words("zh"), Words("en")
    assert (zh.level("Ⅳ"), en.level("Ⅳ")) == ("一般（Ⅳ级）", "General (level Ⅳ)")
    assert (zh.name("order", "released"), en.name("order", "released")) == ("已归队", "released")
    assert en.name("order", "lost") == "lost"                                   # an unknown code as it is
    assert (zh.category("水旱灾害"), en.category("水旱灾害")) == ("水旱灾害", "Flood and drought")
    assert (zh.unit("辆"), en.unit("辆"), zh.unit(None)) == (" 辆", "", "")
    started = {"key": "activation_time", "value": 90, "measured": "1.5 分钟"}
    assert (zh.measured(started), en.measured(started)) == ("1.5 分钟", "1.5 min")
    never = {"key": "activation_time", "value": None, "measured": "未启动"}
    assert en.measured(never) == "not started"
    assert en.measured({"key": "dispatch_ack", "value": None, "measured": "无调度"}) == "no orders"
    assert en.measured({"key": "tasks_on_time", "value": 0.5, "measured": "2/4"}) == "2/4"
    assert (zh.paren("张三"), en.paren("张三")) == ("（张三）", " (张三)")
