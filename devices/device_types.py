"""Device types as data (devices/seed/device_types.yaml): each type's telemetry schema,
default rules and the part classes it may sit on; checked on reading, loaded into
device_type so the API, the registry and every ingest worker see the same catalog."""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
import yaml

from devices.rules import Rule, parse_rules
from gis.db import audit
from gis.errors import Invalid

TYPES_PATH = Path(__file__).parent / "seed" / "device_types.yaml"
_CODE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
_FIELD = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_FIELD_KEYS = {"type", "unit", "min", "max", "label"}


@dataclass(frozen=True)
class DeviceType:
    code: str
    name: str
    name_en: str
    part_classes: tuple[str, ...]
    heartbeat_s: int | None
    fields: dict[str, dict]
    rules: tuple[Rule, ...]
    raw_rules: tuple[dict, ...]
    commands: dict[str, dict]                 # name → {label, params: {name: spec}, timeout_s}


def read_types(path: Path = TYPES_PATH) -> dict[str, DeviceType]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise Invalid(f"{path.name}: not valid YAML: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("types"), dict) or not doc["types"]:
        raise Invalid(f"{path.name}: expected a mapping with `types:` holding one entry per device type")
    return {code: parse_type(code, raw, path.name) for code, raw in doc["types"].items()}


def parse_type(code: object, raw: object, source: str) -> DeviceType:
    where = f"{source}: type {code}"
    if not isinstance(code, str) or not _CODE.match(code):
        raise Invalid(f"{where}: a type code is lower_case ASCII like manhole_cover")
    if not isinstance(raw, dict):
        raise Invalid(f"{where}: expected a mapping")
    for key in ("name", "name_en"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise Invalid(f"{where}: {key} is missing")
    classes = raw.get("part_classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) and re.fullmatch(r"\d{4}", c) for c in classes):
        raise Invalid(f"{where}: part_classes is a list of 4-digit part class codes (quoted, like \"0101\")")
    heartbeat = raw.get("heartbeat_s")
    if heartbeat is not None and (not isinstance(heartbeat, int) or isinstance(heartbeat, bool) or heartbeat <= 0):
        raise Invalid(f"{where}: heartbeat_s is the seconds between a healthy device's reports")
    fields = raw.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise Invalid(f"{where}: fields (the telemetry schema) is missing")
    for name, spec in fields.items():
        _check_field(name, spec, f"{where} field {name}")
    rules = parse_rules(raw.get("rules", []), fields, where)
    commands = raw.get("commands", {})
    if not isinstance(commands, dict):
        raise Invalid(f"{where}: commands is a mapping of command name → {{label, params, timeout_s}}")
    for name, spec in commands.items():
        _check_command(name, spec, f"{where} command {name}")
    return DeviceType(code, raw["name"].strip(), raw["name_en"].strip(), tuple(classes), heartbeat, fields,
                      tuple(rules), tuple(raw.get("rules", [])), commands)


def _check_command(name: object, spec: object, where: str) -> None:
    if not isinstance(name, str) or not _FIELD.match(name):
        raise Invalid(f"{where}: a command name is lower_case ASCII like switch")
    if not isinstance(spec, dict) or set(spec) - {"label", "params", "timeout_s"} or not isinstance(spec.get("label"), str):
        raise Invalid(f"{where}: a command is {{label, params (optional), timeout_s}}")
    timeout = spec.get("timeout_s")
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= 3600:
        raise Invalid(f"{where}: timeout_s is the seconds a device has to answer (1-3600)")
    params = spec.get("params", {})
    if not isinstance(params, dict):
        raise Invalid(f"{where}: params is a mapping of name → field spec")
    for param, field_spec in params.items():
        _check_field(param, field_spec, f"{where} param {param}")


def _check_field(name: object, spec: object, where: str) -> None:
    if not isinstance(name, str) or not _FIELD.match(name):
        raise Invalid(f"{where}: a field name is lower_case ASCII (quote names YAML reads as booleans: \"on\")")
    if not isinstance(spec, dict) or spec.get("type") not in ("number", "boolean"):
        raise Invalid(f"{where}: type must be number or boolean")
    if set(spec) - _FIELD_KEYS:
        raise Invalid(f"{where}: unknown key(s) {sorted(set(spec) - _FIELD_KEYS)}")
    if spec["type"] == "number":
        low, high = spec.get("min"), spec.get("max")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high)) \
                or low >= high:
            raise Invalid(f"{where}: a number field needs min < max (readings outside are refused)")


def load_types(conn: psycopg.Connection, types: dict[str, DeviceType], actor: str = "system") -> int:
    """Insert or update every type (one transaction, one audit row); returns how many."""
    with conn.transaction():
        for t in types.values():
            conn.execute(
                "INSERT INTO device_type (code, name, name_en, part_classes, heartbeat_s, fields, rules, commands)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (code) DO UPDATE SET name = excluded.name,"
                " name_en = excluded.name_en, part_classes = excluded.part_classes,"
                " heartbeat_s = excluded.heartbeat_s, fields = excluded.fields, rules = excluded.rules,"
                " commands = excluded.commands, updated_at = now()",
                (t.code, t.name, t.name_en, list(t.part_classes), t.heartbeat_s,
                 json.dumps(t.fields, ensure_ascii=False), json.dumps(list(t.raw_rules), ensure_ascii=False),
                 json.dumps(t.commands, ensure_ascii=False)))
        audit(conn, actor=actor, action="device_type.load", entity="device_type",
              detail={"types": sorted(types)})
    return len(types)


def types_from_db(conn: psycopg.Connection) -> dict[str, DeviceType]:
    """The catalog as loaded (what workers judge by)."""
    rows = conn.execute("SELECT code, name, name_en, part_classes, heartbeat_s, fields, rules, commands"
                        " FROM device_type").fetchall()
    return {r["code"]: parse_type(r["code"], {"name": r["name"], "name_en": r["name_en"],
                                              "part_classes": list(r["part_classes"]), "heartbeat_s": r["heartbeat_s"],
                                              "fields": r["fields"], "rules": r["rules"], "commands": r["commands"]},
                                  "device_type")
            for r in rows}
