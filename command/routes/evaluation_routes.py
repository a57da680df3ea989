"""综合评价 — evaluation indicators and grades (being written: see tests/command/test_evaluation_api.py)."""
from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["evaluation"])
