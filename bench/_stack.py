"""Shared by the benchmarks: a throwaway PostGIS cluster in a temp folder, stopped and
removed on the way out (also on errors and Ctrl-C).

    with throwaway_postgres("citygrid-bench-x-", durable=True) as stack:
        stack.url            # postgresql://postgres@127.0.0.1:PORT/bench
        stack.home           # the temp folder, for scratch files next to the cluster

`durable=False` starts it the way the test suite does (fsync, synchronous_commit and
full_page_writes off): fine when commits are not what is measured. `durable=True` keeps
PostgreSQL's defaults, so every commit really waits for its WAL flush.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from command.services import PostgresCluster, free_port  # noqa: E402

BENCH_URL_VARIABLE = "CITYGRID_BENCH_DATABASE_URL"


@dataclass
class Stack:
    home: Path                          # temp folder (scratch files may go here too)
    url: str                            # the bench database
    cluster: PostgresCluster | None     # None when an outside database was given
    where: str                          # "throwaway cluster" / "given database"
    durable: bool

    def settings_note(self) -> str:
        if self.cluster is None:
            return "given database (its own settings)"
        return ("throwaway cluster, durable settings (fsync on, synchronous_commit on)" if self.durable
                else "throwaway cluster, fast settings (fsync off, synchronous_commit off)")


@contextmanager
def throwaway_postgres(prefix: str = "citygrid-bench-", *, durable: bool = False, database: str = "bench",
                       allow_given: bool = False) -> Iterator[Stack]:
    """A fresh cluster with an empty `database`. With `allow_given`, a database named in
    CITYGRID_BENCH_DATABASE_URL is used instead (nothing is started or removed then)."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    given = os.environ.get(BENCH_URL_VARIABLE) if allow_given else None
    if given:
        try:
            yield Stack(home, given, None, "given database", durable)
        finally:
            shutil.rmtree(home, ignore_errors=True)
        return
    cluster = PostgresCluster(home / "data", free_port(), superuser="postgres", password=None)
    try:
        cluster.init()
        cluster.start(fast=not durable)
        cluster.ensure_database(database)
        yield Stack(home, cluster.url(database), cluster, "throwaway cluster", durable)
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)
