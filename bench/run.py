"""Benchmark taskq and its peers through the same workloads on the same Redis, in one run.

Usage: python bench/run.py [--n N] [--repeat R] [--only fw,fw] [--workloads w,w] [--merge] [--smoke]
                           [--out docs/benchmarks.md]

Starts two redis-servers on free loopback ports (the broker under test and the ledger, see
bench/peers/common.py), creates bench/.peers-venv with the peers from
bench/peers/requirements.txt (unless it exists), and runs every adapter bench/peers/fw_*.py
for each workload: taskq with this interpreter, the peers with the peers' interpreter. Each
number is the median of R runs. Writes the results as JSON (bench/results/latest.json), a
Markdown table into the marked section of docs/benchmarks.md and a plot (docs/benchmarks.png).
--smoke: taskq only, small N, one run, nothing written (what `make test` runs).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from _redis import redis_url  # bench/ is the script directory, so on sys.path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = HERE / "peers"
PEERS_VENV = HERE / ".peers-venv"
FRAMEWORKS = ["taskq", "huey", "dramatiq", "taskiq", "saq", "celery", "arq", "rq"]
WORKLOADS = ["enqueue", "bulk", "gather", "process", "latency", "idle"]
MARK_BEGIN = "<!-- bench:begin -->"
MARK_END = "<!-- bench:end -->"


def peers_python() -> str:
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        print("creating bench/.peers-venv with the peers (once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(PEERS / "requirements.txt")],
                       check=True)
    return str(python)


def run_one(python: str, fw: str, workload: str, config: str, n: int, broker: str, ledger: str) -> dict[str, Any]:
    cmd = [python, str(PEERS / f"fw_{fw}.py"), workload, "--url", broker, "--ledger", ledger,
           "--n", str(n), "--config", config]
    env = {**os.environ, "PYTHONPATH": str(PEERS)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


#: (workload, config) in the order they run
PLAN = [("enqueue", "default"), ("bulk", "default"), ("gather", "default"), ("process", "default"),
        ("process", "best"), ("commands", "best"), ("latency", "default"), ("idle", "default")]


def measure(fw: str, n: int, repeat: int, broker: str, ledger: str, workloads: set[str]) -> dict[str, Any]:
    python = sys.executable if fw == "taskq" else peers_python()
    out: dict[str, Any] = {}
    for workload, config in PLAN:
        if workload not in workloads:
            continue
        runs = []
        for _ in range(1 if workload in ("idle", "commands") else repeat):
            result = run_one(python, fw, workload, config, n, broker, ledger)
            print(f"  {fw:<9} {workload:<8} {config:<8} {json.dumps(result)}", file=sys.stderr)
            runs.append(result)
        key = f"{workload}_{config}" if workload == "process" else workload
        ok = [r for r in runs if "error" not in r]
        entry: dict[str, Any] = {"runs": runs, "date": dt.date.today().isoformat()}
        if ok:
            entry.update(config=ok[0].get("config"), version=ok[0].get("version"), note=ok[0].get("note"))
            for metric in ("rate", "commands_per_job", "p50_ms", "p99_ms", "commands_per_s", "stall_ms"):
                entry[metric] = median_of(ok, metric)
        out[key] = entry
    return out


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if unit == "/s":
        return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"
    return f"{value:.2f}" if value < 10 else f"{value:.0f}"


def table(results: dict[str, dict[str, Any]]) -> str:
    rows = ["| framework | version | enqueue/s | bulk/s | asyncio gather/s (stall ms) | process/s default | "
            "process/s best | latency p50 / p99 ms | Redis cmds/job | idle cmds/s |",
            "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for fw, r in results.items():
        def e(key: str, r: dict[str, Any] = r) -> dict[str, Any]:
            return dict(r.get(key, {}))

        version = next((r[k].get("version") for k in r if r[k].get("version")), "?")
        lat, gather = e("latency"), e("gather")
        gathered = fmt(gather.get("rate"), "/s") + (f" ({fmt(gather['stall_ms'])})" if gather.get("stall_ms") else "")
        rows.append(
            f"| {fw} | {version} | {fmt(e('enqueue').get('rate'), '/s')} | {fmt(e('bulk').get('rate'), '/s')} | "
            f"{gathered} | {fmt(e('process_default').get('rate'), '/s')} | "
            f"{fmt(e('process_best').get('rate'), '/s')} | {fmt(lat.get('p50_ms'))} / {fmt(lat.get('p99_ms'))} | "
            f"{fmt(e('commands').get('commands_per_job'))} | {fmt(e('idle').get('commands_per_s'))} |")
    configs = ["", "Configurations (default = the framework's documented default worker command; "
               "best = the fastest we found on this machine):", ""]
    for fw, r in results.items():
        small = [f"{k.split('_')[1]} process rate over n={run['n']}" for k in ("process_default", "process_best")
                 for run in r.get(k, {}).get("runs", [])[:1] if "n" in run]
        notes = [f"{label}: {r[k]['note']}" for k, label in (("bulk", "bulk"), ("gather", "asyncio"))
                 if r.get(k, {}).get("note")]
        configs.append(f"- **{fw}**: default `{r.get('process_default', {}).get('config')}`; "
                       f"best `{r.get('process_best', {}).get('config')}`"
                       + "".join(f"; {n}" for n in notes) + (f"; {', '.join(small)}" if small else ""))
    errors = [f"- {fw} {k}: {run['error']}" for fw, r in results.items() for k, e in r.items()
              for run in e.get("runs", []) if "error" in run]
    if errors:
        configs += ["", "Errors:", "", *errors]
    return "\n".join(rows + configs)


def plot(results: dict[str, dict[str, Any]], path: Path) -> None:
    script = f"""
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
r = json.load(open({str(path.with_suffix('.json'))!r}))["results"]
fws = list(r)
fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
x = range(len(fws))
best = [r[f]["process_best"].get("rate") or 0 for f in fws]
dflt = [r[f]["process_default"].get("rate") or 0 for f in fws]
a.bar([i - 0.2 for i in x], dflt, 0.4, label="default config")
a.bar([i + 0.2 for i in x], best, 0.4, label="best config")
a.set_xticks(list(x), fws); a.set_ylabel("jobs/s"); a.set_title("processing throughput (no-op jobs)"); a.legend()
p50 = [r[f]["latency"].get("p50_ms") or 0 for f in fws]
p99 = [r[f]["latency"].get("p99_ms") or 0 for f in fws]
b.bar([i - 0.2 for i in x], p50, 0.4, label="p50"); b.bar([i + 0.2 for i in x], p99, 0.4, label="p99")
b.set_yscale("log"); b.set_xticks(list(x), fws); b.set_ylabel("ms (log)")
b.set_title("enqueue -> start latency at 100 jobs/s"); b.legend()
fig.tight_layout(); fig.savefig({str(path)!r}, dpi=110)
"""
    subprocess.run([peers_python(), "-c", script], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default=",".join(FRAMEWORKS))
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--workloads", default=",".join(dict.fromkeys(w for w, _ in PLAN)),
                        help="Run only these workloads (comma-separated).")
    parser.add_argument("--merge", action="store_true",
                        help="Keep the last run's results of what is not rerun (frameworks, workloads).")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    frameworks = ["taskq"] if args.smoke else [f for f in args.only.split(",") if f]
    n, repeat = (500, 1) if args.smoke else (args.n, args.repeat)
    results: dict[str, dict[str, Any]] = {}
    with redis_url() as broker, redis_url() as ledger:
        for fw in frameworks:
            print(f"{fw}:", file=sys.stderr)
            results[fw] = measure(fw, n, repeat, broker, ledger, set(args.workloads.split(",")))
    out = Path(args.out)
    since = ""
    if args.merge and out.with_suffix(".json").exists():
        last = json.loads(out.with_suffix(".json").read_text())
        previous, since = last["results"], last["meta"].get("since") or last["meta"]["date"]
        merged = {fw: {**previous.get(fw, {}), **results.get(fw, {})} for fw in {**previous, **results}}
        results = {fw: merged[fw] for fw in [*FRAMEWORKS, *merged] if fw in merged}
    text = table(results)
    print(text)
    if args.smoke:
        bad = [k for k, e in results["taskq"].items() if any("error" in r for r in e["runs"])]
        if bad:
            raise SystemExit(f"smoke benchmark failed: {bad}")
        return
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    meta = {"date": dt.date.today().isoformat(), "n": n, "repeat": repeat, "python": platform.python_version(),
            "redis": redis_version.removeprefix("v="), "cpus": os.cpu_count()}
    if since:  # merged: the oldest numbers shown are from then
        meta["since"] = since
        meta["rerun"] = f"{args.workloads} of {args.only}, median of {repeat}"
    results_dir = HERE / "results"
    results_dir.mkdir(exist_ok=True)
    png = out.with_suffix(".png")
    json_path = png.with_suffix(".json")
    json_path.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    (results_dir / "latest.json").write_text(json_path.read_text())
    plot(results, png)
    rerun = f" (merged: {meta['rerun']}, rerun then; the rest from the run of {since})" if since else ""
    medians = "" if since else f", median of {repeat}"
    header = (f"Run {meta['date']}{rerun}: N={n} no-op jobs{medians}, Python {meta['python']}, "
              f"redis-server {meta['redis']}, {meta['cpus']} CPUs; `make bench` reproduces it.\n\n")
    block = f"{MARK_BEGIN}\n{header}{text}\n\n![throughput and latency]({png.name})\n{MARK_END}"
    doc = out.read_text() if out.exists() else f"# Benchmarks\n\n{MARK_BEGIN}\n{MARK_END}\n"
    if MARK_BEGIN not in doc:
        doc += f"\n{MARK_BEGIN}\n{MARK_END}\n"
    before, rest = doc.split(MARK_BEGIN, 1)
    after = rest.split(MARK_END, 1)[1]
    out.write_text(before + block + after)


if __name__ == "__main__":
    main()
