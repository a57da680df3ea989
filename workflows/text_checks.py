"""Text that may end up in public XML (the CAP messages and the Atom feed): XML 1.0 has no
place for the C0 control characters other than tab, newline and carriage return, nor for
U+FFFE/U+FFFF or a lone surrogate, so one of them in a stored value would make every
document built from it unparsable. Such text is refused where it comes in."""
from __future__ import annotations

import re
from typing import Any

from gis.errors import Invalid

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def check_text(field: str, value: Any) -> None:
    """Refuse a text holding a character XML cannot carry, naming the field and the character."""
    if not isinstance(value, str):
        return
    bad = _NOT_XML.search(value)
    if bad is not None:
        raise Invalid(f"{field} contains the control character U+{ord(bad.group()):04X} at position"
                      f" {bad.start() + 1}, which cannot be published; remove it and send the text again")


def check_texts(field: str, value: Any) -> None:
    """check_text on every key and text inside a JSON-like value (dicts and lists, nested)."""
    if isinstance(value, dict):
        for key, item in value.items():
            check_text(f"{field} key {key!r}", key)
            check_texts(f"{field}.{key}", item)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_texts(f"{field}[{i}]", item)
    else:
        check_text(field, value)
