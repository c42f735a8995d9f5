"""``paper_repro.py app``: serve the explorer (figures/explorer.py, a marimo app) on 127.0.0.1, or write a static
HTML snapshot of its default state (``--export``)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from figures import explorer_compute as ex
from theory.ground.atomic_io import atomic_write_text
from theory.ground.errors import UsageError, require_int
from theory.ground.options import option

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "figures" / "explorer.py"
HOST = "127.0.0.1"  # local only: the app runs code on this machine for whoever reaches it
SERVE_TIMEOUT = 30.0  # seconds the server may take to answer before the command gives up


@dataclass(frozen=True)
class AppConfig:
    """The explorer: the failure mode and its remedies under sliders in the browser (a marimo app, figures/explorer.py;
    its process imports no torch). Controls: d, K (or ∞), the task structure (a rank-r subspace with variance V, a
    power-law spectrum, or d eigenvalues typed as `explore --task-spectrum` reads them), the input spectrum
    (isotropic or power law), ‖μ‖, s², α (or α*), k, h; defaults are `explore`'s. Panels: the post-adaptation loss
    against α (shallow k-step curves with α*_k, the optimal preconditioner, ANIL and depth-2 at width h, the Bayes
    floor, the pre-adaptation loss, each labelled exact, numerical or Monte-Carlo), figure 6's phase diagram with the
    setting marked, the meta-training curves of shallow MAML and ANIL (`dynamics`'s exact gradient flow), and the
    `explore --theory-only --json` and `dynamics --json` commands that print the same numbers. Prints its URL on
    127.0.0.1; Ctrl-C stops it. `--export PATH.html` writes a self-contained page of the default setting's numbers
    and plots instead of serving."""

    port: int = option(2718, "TCP port on 127.0.0.1 to serve the app on (marimo's usual port)")
    no_browser: bool = option(False, "do not open a browser (serve headless)")
    export: str | None = option(None, "write a self-contained HTML snapshot of the default setting to this file "
                                      "instead of serving (checked before any work)", metavar="PATH.html",
                                path="file")

    def __post_init__(self):
        require_int("port", self.port, 1, 65535)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no owner
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((HOST, port)) == 0


def serve(port: int, headless: bool) -> subprocess.Popen:
    """Start ``marimo run figures/explorer.py`` on 127.0.0.1:port; return once it answers (UsageError if it
    cannot start within SERVE_TIMEOUT seconds; the server stopped on any error or interrupt before that)."""
    if not _port_free(port):
        raise UsageError(f"argument --port: {port} is in use on {HOST} (choose another port)")
    command = [sys.executable, "-m", "marimo", "run", str(NOTEBOOK), "--host", HOST, "--port", str(port),
               "--no-sandbox", *(["--headless"] if headless else [])]
    log = tempfile.TemporaryFile()  # marimo's messages: a file, never a pipe that fills and stalls the server
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "MPLBACKEND": "Agg"},
                               stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + SERVE_TIMEOUT
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                last = log.read().decode(errors="replace").strip().splitlines()[-1:] or ["no answer"]
                raise UsageError(f"argument --port: the app did not start on {HOST}:{port} ({last[0]})")
            time.sleep(0.2)
    except BaseException:
        stop(process)
        raise
    return process


def stop(process: subprocess.Popen) -> None:
    """Stop the server: SIGTERM, then SIGKILL after 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run(config: AppConfig, progress: bool = False) -> dict:
    """Export the snapshot, or serve until Ctrl-C or SIGTERM (the URL printed as soon as the app answers)."""
    if config.export is not None:
        page = _snapshot()
        atomic_write_text(Path(config.export), page)
        return {"export": config.export, "bytes": len(page.encode())}
    url = f"http://{HOST}:{config.port}"
    before = signal.signal(signal.SIGTERM, _interrupt)  # a plain kill stops the server too
    try:
        process = serve(config.port, headless=config.no_browser)
        try:
            print(f"The explorer is at {url} (Ctrl-C stops it)", flush=True)
            process.wait()
        except KeyboardInterrupt:
            pass
        finally:
            stop(process)
    finally:
        signal.signal(signal.SIGTERM, before)
    return {"url": url}


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _snapshot() -> str:
    from figures.explorer_plots import snapshot_html  # matplotlib: only for the export

    searches = ex.Searches()
    try:
        return snapshot_html(ex.Controls(), searches)
    finally:
        searches.stop()


def format_report(report: dict) -> str:
    if "export" in report:
        return f"wrote {report['export']} ({report['bytes']} bytes): the explorer at explore's default setting"
    return f"the explorer at {report['url']} stopped"
