"""HTML → PDF with the machine's own headless Chromium (Debian's /usr/bin/chromium): the
printable pages (the after-action report) come out exactly as the browser prints them, with
their @page size and CJK fonts, and nothing is fetched from anywhere (the HTML is
self-contained). The browser path comes from CITYGRID_CHROMIUM.

A browser takes a core for a second or two, so the server hands in its `printers` (a
semaphore of CITYGRID_PDF_AT_ONCE, 2 by default): a request that finds them all busy for long
is told to try again rather than piling browsers onto the cores."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path

DEFAULT_CHROMIUM = "/usr/bin/chromium"


class PdfUnavailable(RuntimeError):
    """The PDF could not be made (no browser, it timed out, or it wrote nothing); the message
    says which, for the person who has to fix the server."""


def chromium_path() -> str:
    return os.environ.get("CITYGRID_CHROMIUM") or DEFAULT_CHROMIUM


def html_to_pdf(html: str, *, printers: threading.Semaphore | None = None, timeout_s: float = 60,
                wait_s: float = 10) -> bytes:
    """Print `html` to PDF bytes, waiting up to `wait_s` for one of the `printers` (none: no
    limit). Raises PdfUnavailable; the temporary folder (page, output, the browser's
    throwaway profile) is removed whatever happens."""
    browser = chromium_path()
    if not (os.path.isfile(browser) and os.access(browser, os.X_OK)):
        raise PdfUnavailable(f"no Chromium at {browser}: install Debian's chromium package, or set CITYGRID_CHROMIUM"
                             " to the browser's path")
    if printers is None:
        return _print(browser, html, timeout_s)
    if not printers.acquire(timeout=wait_s):
        raise PdfUnavailable(f"every printer was busy for {wait_s:g} s; try again in a minute")
    try:
        return _print(browser, html, timeout_s)
    finally:
        printers.release()


def _print(browser: str, html: str, timeout_s: float) -> bytes:
    work = Path(tempfile.mkdtemp(prefix="citygrid-pdf-"))
    try:
        page, out = work / "page.html", work / "out.pdf"
        page.write_text(html, encoding="utf-8")
        args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", "--no-first-run", "--no-default-browser-check", "--mute-audio",
                # its own profile, so two reports at once do not fight over one (and nothing is left behind)
                f"--user-data-dir={work / 'profile'}",
                # no date/title/URL printed in the margins; the older spelling for older browsers
                "--no-pdf-header-footer", "--print-to-pdf-no-header",
                f"--print-to-pdf={out}", page.as_uri()]
        # A session of its own, so a timeout takes down the browser's helper processes too.
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True, env={**os.environ, "HOME": str(work)})
        try:
            _, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise PdfUnavailable(f"Chromium did not finish the PDF within {timeout_s:g} s") from None
        data = out.read_bytes() if out.exists() else b""
        if not data.startswith(b"%PDF"):
            tail = err.decode("utf-8", "replace").strip().splitlines()[-3:]
            raise PdfUnavailable(f"Chromium wrote no PDF (exit {proc.returncode})" + (f": {' / '.join(tail)}" if tail else ""))
        return data
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _kill(proc: subprocess.Popen) -> None:
    """The browser is still running (timed out), so its process group is surely ours."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
