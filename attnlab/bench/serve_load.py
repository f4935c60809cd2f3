"""`attnlab bench serve`: a bounded load test of the explorer's POST /api/tag, on loopback only.

The server runs in its own process (``attnlab serve --port 0``) so that the clients, threads
of this process with one keep-alive connection each, do not share its interpreter. Every
client sends its requests one after another; all start together. A request counts as an
error unless it gets 200 and a JSON answer with one tag per token. Two servers are compared
in the same run: one batching concurrent requests into shared forward passes and one
tagging them one at a time.
"""

from __future__ import annotations

import functools
import http.client
import json
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from .timing import time_loops

MAX_CLIENTS = 64
MAX_REQUESTS = 2000  # per client

# Sentences of 4 to 33 words, sent in turn by every client.
SENTENCES = (
    "I saw a saw .",
    "They watch the old watch every morning .",
    "The book you gave me is on the table .",
    "Can you book a table for two people at eight tonight ?",
    "We will fly to Boston next week if the weather is good .",
    "She said that the new plan would cost more than the old one , but nobody listened .",
    "After the meeting , the committee decided to postpone the vote until the members had read the full report .",
    "Prices rose sharply in March , and many families who had saved for years found that their money bought "
    "far less than before .",
)


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def check_loopback(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", "::1") or parts.port is None:
        raise ValueError(f"the load test only targets http://127.0.0.1:PORT (loopback), got {url!r}")
    return parts.hostname, parts.port


def _client(host: str, port: int, requests: int, offset: int, start: threading.Event, out: dict) -> None:
    latencies, errors = [], []
    conn = http.client.HTTPConnection(host, port, timeout=30)
    start.wait()
    for r in range(requests):
        text = SENTENCES[(offset + r) % len(SENTENCES)]
        body = json.dumps({"text": text}).encode()
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/api/tag", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            elapsed = time.perf_counter() - t0
            answer = json.loads(data) if resp.status == 200 else None
            if answer is None or len(answer.get("tags", ())) != len(answer.get("tokens", ())) or not answer["tags"]:
                errors.append(f"status {resp.status}: {data[:120]!r}")
            latencies.append(elapsed)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.close()
    out["latencies"], out["errors"] = latencies, errors


def run_load(url: str, *, clients: int = 20, requests: int = 100) -> dict:
    """``clients`` concurrent clients x ``requests`` requests each against ``url``/api/tag."""
    if not 1 <= clients <= MAX_CLIENTS:
        raise ValueError(f"clients must be in 1..{MAX_CLIENTS}, got {clients}")
    if not 1 <= requests <= MAX_REQUESTS:
        raise ValueError(f"requests must be in 1..{MAX_REQUESTS}, got {requests}")
    host, port = check_loopback(url)
    start = threading.Event()
    results: list[dict] = [dict() for _ in range(clients)]
    threads = [threading.Thread(target=_client, args=(host, port, requests, c, start, results[c])) for c in range(clients)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    start.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = sorted(x * 1000.0 for r in results for x in r["latencies"])
    errors = [e for r in results for e in r["errors"]]
    return {
        "clients": clients, "requests_per_client": requests, "requests": clients * requests,
        "errors": len(errors), "error_examples": errors[:5], "wall_s": wall,
        "throughput_rps": clients * requests / wall,
        "p50_ms": percentile(lat, 50), "p90_ms": percentile(lat, 90), "p99_ms": percentile(lat, 99),
        "max_ms": lat[-1] if lat else float("nan"), "mean_ms": statistics.fmean(lat) if lat else float("nan"),
    }


def model_alone_ms(model_dir: Path, repeats: int = 5, threads: int = 1) -> float:
    """Median time of ``Explainable.tag`` on one sentence in this process (no HTTP), in ms."""
    import torch

    from ..viz.model import load_explainable, tokenize

    torch.set_num_threads(threads)

    model = load_explainable(model_dir)
    sentences = [tokenize(s) for s in SENTENCES]
    model.tag(sentences[:2])  # warm up
    times = [time_loops(functools.partial(model.tag, [s]), 1) * 1000.0 for _ in range(repeats) for s in sentences]
    return statistics.median(times)


class ServerProcess:
    """``attnlab serve --model DIR --port 0`` in a child process; ``url`` once it listens."""

    def __init__(self, model_dir: Path, *, max_batch: int = 32, threads: int = 1, startup_timeout: float = 60.0):
        self.log = tempfile.TemporaryFile(mode="w+b")
        cmd = [sys.executable, "-m", "attnlab", "serve", "--model", str(model_dir), "--port", "0", "--quiet",
               "--max-batch", str(max_batch), "--threads", str(threads)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log)
        line = self._first_line(startup_timeout)
        if " at http://" not in line:
            self.stop()
            raise RuntimeError(f"`{' '.join(cmd)}` did not start: {self.stderr() or line or 'no output'}")
        self.url = line.split(" at ", 1)[1].split()[0].rstrip("/")

    @property
    def _stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None  # started with stdout=PIPE
        return self.proc.stdout

    def _first_line(self, timeout: float) -> str:
        ready, _, _ = select.select([self._stdout], [], [], timeout)
        return self._stdout.readline().decode(errors="replace").strip() if ready else ""

    def stderr(self) -> str:
        """The last line the server wrote to its standard error."""
        self.log.seek(0)
        lines = self.log.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stdout.close()
        self.log.close()


VARIANTS = {"batched": 32, "one at a time": 1}  # name -> the server's --max-batch


def start_servers(model_dir: Path, threads: int) -> dict[str, ServerProcess]:
    """One server per variant of VARIANTS; none left running if one fails to start."""
    servers: dict[str, ServerProcess] = {}
    try:
        for name, max_batch in VARIANTS.items():
            servers[name] = ServerProcess(model_dir, max_batch=max_batch, threads=threads)
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    return servers


def load_alternating(urls: dict[str, str], clients: int, requests: int, repeat: int) -> dict[str, list[dict]]:
    """``repeat`` load runs against every server, alternating, so that the machine's other load
    hits them alike (after a short warm-up of each)."""
    for url in urls.values():
        run_load(url, clients=2, requests=5)  # warm up each server's first calls
    runs: dict[str, list[dict]] = {name: [] for name in urls}
    for _ in range(repeat):
        for name, url in urls.items():
            runs[name].append(run_load(url, clients=clients, requests=requests))
    return runs


def median_of(runs: list[dict]) -> dict:
    """Medians of the figures of several load runs; errors and requests summed."""
    keys = ("wall_s", "throughput_rps", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms")
    out = {k: statistics.median(r[k] for r in runs) for k in keys}
    out["errors"] = sum(r["errors"] for r in runs)
    out["error_examples"] = [e for r in runs for e in r["error_examples"]][:5]
    out["requests"] = sum(r["requests"] for r in runs)
    out["runs"] = runs
    return out


def compare_servers(model_dir: Path, *, clients: int = 20, requests: int = 100, repeat: int = 3,
                    url: str | None = None, threads: int = 1) -> dict:
    """The load test of `attnlab bench serve`: both VARIANTS started for ``model_dir`` (or only the
    server already running at ``url``), their medians, ratios and the model alone."""
    if url:
        check_loopback(url)
        servers, urls = {}, {"given server": url.rstrip("/")}
    else:
        servers = start_servers(model_dir, threads)
        urls = {name: s.url for name, s in servers.items()}
    try:
        runs = load_alternating(urls, clients, requests, repeat)
    finally:
        for server in servers.values():
            server.stop()
    result: dict[str, Any] = {"clients": clients, "requests_per_client": requests, "repeat": repeat,
              "variants": {name: median_of(r) for name, r in runs.items()},
              "model_alone_ms": model_alone_ms(model_dir, threads=threads)}
    if len(result["variants"]) == 2:
        a, b = (result["variants"][name] for name in VARIANTS)
        result["ratios"] = {"throughput": a["throughput_rps"] / b["throughput_rps"],
                            "p50": a["p50_ms"] / b["p50_ms"], "p99": a["p99_ms"] / b["p99_ms"]}
    return result


def format_result(result: dict) -> str:
    lines = [
        f"POST /api/tag on 127.0.0.1: {result['clients']} clients x {result['requests_per_client']} requests, "
        f"{result['repeat']} runs per server (medians over the runs; errors summed)",
        f"  {'server':<14} {'errors':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'requests/s':>10}",
    ]
    for name, m in result["variants"].items():
        lines.append(f"  {name:<14} {m['errors']:>6} {m['p50_ms']:>8.1f} {m['p90_ms']:>8.1f} {m['p99_ms']:>8.1f} "
                     f"{m['max_ms']:>8.1f} {m['throughput_rps']:>10.0f}")
        lines += [f"      {e}" for e in m["error_examples"]]
    if "ratios" in result:
        r = result["ratios"]
        lines.append(f"  batched / one at a time: throughput x{r['throughput']:.2f}, p50 x{r['p50']:.2f}, p99 x{r['p99']:.2f}")
    lines.append(f"  the model alone (tag one sentence, no HTTP, median): {result['model_alone_ms']:.2f} ms")
    return "\n".join(lines)


def any_errors(result: dict) -> bool:
    return any(m["errors"] for m in result["variants"].values())
