"""National codes: unit grids (GB/T 30428.1 / CJ/T 213) and parts (GB/T 30428.2 / CJ/T 214).

Grid code, 15 digits = county (6, GB/T 2260) + street/town (3, GB/T 10114) + community (3)
+ grid sequence (3). Legacy 14-digit codes carry a 2-digit sequence and are widened.
Part id, 16 digits = county (6) + big class (2) + small class (2) + sequence (6).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from gis.errors import Invalid

# GB/T 2260 province-level prefixes.
PROVINCES = {
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64",
    "65", "71", "81", "82",
}
_DIGITS = re.compile(r"^[0-9]+$")


class CodeError(Invalid):
    """A code that does not follow the national standard; the message says why."""


def check_county(code: str) -> str:
    if not (len(code) == 6 and _DIGITS.match(code)):
        raise CodeError(f"county code {code!r} must be 6 digits (GB/T 2260)")
    if code[:2] not in PROVINCES:
        raise CodeError(f"county code {code!r}: {code[:2]} is not a province code of GB/T 2260")
    if code[4:] == "00":
        raise CodeError(f"county code {code!r} ends in 00, which names a prefecture, not a county")
    return code


def street_kind(street3: str) -> str:
    """街道 001–099, 镇 100–199, 乡 200–399 (GB/T 10114)."""
    n = int(street3)
    if 1 <= n <= 99:
        return "街道"
    if 100 <= n <= 199:
        return "镇"
    if 200 <= n <= 399:
        return "乡"
    raise CodeError(f"street/town code {street3} is outside 001–399 (GB/T 10114: "
                    "001–099 街道, 100–199 镇, 200–399 乡)")


@dataclass(frozen=True)
class GridCode:
    code: str  # always 15 digits

    @property
    def county(self) -> str:
        return self.code[:6]

    @property
    def street(self) -> str:
        return self.code[:9]

    @property
    def community(self) -> str:
        return self.code[:12]

    @property
    def sequence(self) -> str:
        return self.code[12:]


def parse_grid_code(raw: object) -> GridCode:
    """Validate a unit grid code; a legacy 14-digit code is widened to 15 digits."""
    code = str(raw).strip() if raw is not None else ""
    if code.endswith(".0") and _DIGITS.match(code[:-2]):   # numeric column read as float
        code = code[:-2]
    if not _DIGITS.match(code):
        raise CodeError(f"grid code {raw!r} must contain digits only")
    if len(code) == 14:
        code = code[:12] + "0" + code[12:]
    elif len(code) != 15:
        raise CodeError(f"grid code {raw!r} has {len(code)} digits; expected 15 (or legacy 14)")
    check_county(code[:6])
    street_kind(code[6:9])
    if code[9:12] == "000":
        raise CodeError(f"grid code {code}: community part 000 is not allowed")
    if code[12:] == "000":
        raise CodeError(f"grid code {code}: grid sequence 000 is not allowed")
    return GridCode(code)


@dataclass(frozen=True)
class PartId:
    id: str

    @property
    def county(self) -> str:
        return self.id[:6]

    @property
    def class_code(self) -> str:
        return self.id[6:10]

    @property
    def sequence(self) -> int:
        return int(self.id[10:])


def parse_part_id(raw: object) -> PartId:
    pid = str(raw).strip() if raw is not None else ""
    if not (len(pid) == 16 and _DIGITS.match(pid)):
        raise CodeError(f"part id {raw!r} must be 16 digits (6 county + 2 big class + "
                        "2 small class + 6 sequence)")
    check_county(pid[:6])
    if pid[10:] == "000000":
        raise CodeError(f"part id {pid}: sequence 000000 is not allowed")
    return PartId(pid)


def make_part_id(county: str, class_code: str, sequence: int) -> str:
    if not 1 <= sequence <= 999_999:
        raise CodeError(f"part sequence {sequence} is outside 1–999999 for class {class_code}")
    return f"{county}{class_code}{sequence:06d}"


def area_level(code: str) -> str:
    """Which level of the hierarchy an area code names, by its length."""
    levels = {6: "county", 9: "street", 12: "community", 15: "grid"}
    if not _DIGITS.match(code) or len(code) not in levels:
        raise CodeError(f"area code {code!r} must be 6, 9, 12 or 15 digits")
    return levels[len(code)]
