"""Reading an import file's rows (units, devices): text in the encodings Excel saves, a
header naming the columns in any order and case, every malformed row named by its line."""
from __future__ import annotations

import csv
import io

from gis.errors import Invalid


class ImportRefused(Invalid):
    """Some rows are bad; `problems` lists (line, reason) for each of them."""

    def __init__(self, source: str, problems: list[tuple[int, str]]):
        self.problems = problems
        lines = "\n".join(f"  line {line}: {reason}" for line, reason in problems)
        super().__init__(f"{source}: {len(problems)} bad row(s), nothing was imported:\n{lines}")


def decode_text(data: bytes, source: str) -> str:
    """UTF-8 (with or without Excel's BOM); a file Excel saved as GBK/GB18030 is taken too."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise Invalid(f"{source} is neither UTF-8 nor GB18030 text; save it as \"CSV UTF-8\"") from None


def read_rows(text: str, source: str, required: tuple[str, ...], optional: tuple[str, ...], max_rows: int,
              what: str) -> list[tuple[int, dict[str, str]]]:
    """(line, {column: stripped value}) per non-blank row; ImportRefused names every row whose
    shape is wrong (not its content)."""
    known = required + optional
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise Invalid(f"{source} is empty; the first line must name the columns ({', '.join(known)})") from None
    except csv.Error as e:
        raise ImportRefused(source, [(1, f"not CSV: {e}")]) from None
    columns = [h.strip().lower() for h in header]
    unknown = [c for c in columns if c not in known]
    missing = [c for c in required if c not in columns]
    doubled = sorted({c for c in columns if columns.count(c) > 1})
    if unknown or missing or doubled:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(repr(c) for c in unknown)} (known: {', '.join(known)})")
        if doubled:
            parts.append(f"column(s) named twice: {', '.join(doubled)}")
        raise ImportRefused(source, [(1, "; ".join(parts))])
    rows: list[tuple[int, dict[str, str]]] = []
    problems: list[tuple[int, str]] = []
    line = reader.line_num
    try:
        for values in reader:
            start, line = line + 1, reader.line_num       # a quoted field may span lines
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(columns):
                problems.append((start, f"has {len(values)} fields; the header has {len(columns)}"))
                continue
            rows.append((start, {c: v.strip() for c, v in zip(columns, values)}))
            if len(rows) > max_rows:
                raise Invalid(f"{source} has more than {max_rows} {what}; split it into several files")
    except csv.Error as e:
        problems.append((reader.line_num, f"not CSV: {e}"))
    if problems:
        raise ImportRefused(source, problems)
    if not rows:
        raise Invalid(f"{source} has a header but no {what}")
    return rows
