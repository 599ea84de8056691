"""Course benchmark: run every notebook headlessly and report time, memory, pass/fail and sample quality.

Each notebook runs in a fresh kernel, in the chosen profile (``full`` by default, ``fast`` accepted), with a fresh
checkpoint folder (so training is measured, not skipped by a resume) and a fresh results folder
(``COURSE_RESULTS_DIR``) where notebooks ``course_utils.results.record(kind, figures)`` their model's quality
figures. Per notebook it records the wall time, the kernel's CPU time, the kernel's peak resident memory and whether
it passed; then it collects the models' figures and adds the same figures for real held-out images (the floor).
Everything runs offline.

Usage::

    python tools/benchmark.py                          # all notebooks, full profile
    python tools/benchmark.py --profile fast --notebook 05
    NOTEBOOK=05 python tools/benchmark.py              # the same selection through the environment
    python tools/benchmark.py --measure-overhead 20    # how much the monitoring itself costs
    python tools/benchmark.py --table build/benchmark/benchmark-full.json   # print a saved report's table again

Writes ``build/benchmark/benchmark-<profile>.json`` and ``.md`` and prints the table (with each notebook's three
slowest cells); every executed notebook, outputs and per-cell timing included, is kept in the run folder's
``executed/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import nbformat

if __package__ in (None, ""):  # run as `python tools/benchmark.py`: make the `tools` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.nbrun import NOTEBOOK_DIR, PROJECT_ROOT, cuda_available, list_notebooks, run_notebook  # noqa: E402

DEFAULT_OUT = PROJECT_ROOT / "build" / "benchmark"
QUALITY_COLUMNS = (
    ("train_seconds", "train s", "{:.1f}"),
    ("samples_per_second", "samples/s", "{:,.0f}"),
    ("mean_confidence", "confidence", "{:.3f}"),
    ("class_entropy_bits", "class entropy (bits)", "{:.2f}"),
    ("fid", "FID (critic features)", "{:.2f}"),
)
# The models in course order; other kinds follow alphabetically.
KIND_ORDER = (
    "autoencoder",
    "vae",
    "cvae",
    "gan",
    "dcgan",
    "diffusion",
    "flow",
    "guided_flow",
    "guided_diffusion",
    "latent_vae",
    "latent_diffusion",
    "charmodel",
    "text",
)


def machine_info() -> dict:
    """The machine the numbers come from: CPU model, cores, memory, Python, torch version and threads, load."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "cuda": cuda_available(),
    }
    try:
        import psutil

        info["physical_cores"] = psutil.cpu_count(logical=False)
        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        info["torch"] = "not installed"
    if hasattr(os, "getloadavg"):
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    return info


def count_checks(nb) -> dict[str, int]:
    """How many exercise checks printed passed / not implemented yet in an executed notebook's outputs."""
    counts = {"passed": 0, "not_implemented": 0}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text = out.get("text", "") if out.get("output_type") == "stream" else ""
            counts["passed"] += sum(line.startswith("✅") for line in text.splitlines())
            counts["not_implemented"] += sum(line.startswith("⏳") for line in text.splitlines())
    return counts


def run_benchmark(
    notebooks: list[Path],
    profile: str = "full",
    out_dir: Path = DEFAULT_OUT,
    timeout: int = 3600,
    fresh_checkpoints: bool = True,
    real_floor: bool = True,
    extra_env: dict[str, str] | None = None,
    progress=print,
) -> dict:
    """Run ``notebooks`` one after another, each in a fresh kernel, and return the report as a dict.

    The report holds ``machine``, ``profile``, ``notebooks`` (one measurement dict per notebook, in order),
    ``quality`` (the models' recorded figures plus the real-image floor) and ``run_dir``. Failed notebooks are
    reported with their first error and never dropped.
    """
    if profile not in ("full", "fast"):
        raise ValueError(f"profile must be 'full' or 'fast', got {profile!r}")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir = Path(out_dir).resolve() / f"run-{profile}-{stamp}"  # absolute: the kernels run in notebooks/
    results_dir = run_dir / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    env = {"COURSE_PROFILE": profile, "COURSE_RESULTS_DIR": str(results_dir), **(extra_env or {})}
    if fresh_checkpoints:  # otherwise a notebook resumes from old checkpoints and its training is not measured
        env["COURSE_CHECKPOINT_DIR"] = str(run_dir / "checkpoints")
    skip = () if cuda_available() else ("gpu",)
    machine = machine_info()
    rows = []
    started = time.perf_counter()
    for path in notebooks:
        progress(f"running {path.name} ({profile} profile) ...")
        try:
            result = run_notebook(path, env=env, timeout=timeout, skip_tags=skip)
            row = result.summary()
            row.update(count_checks(result.notebook))
            executed = run_dir / "executed" / path.name  # outputs and per-cell timing, to read after the run
            executed.parent.mkdir(exist_ok=True)
            nbformat.write(result.notebook, executed)
        except Exception as exc:  # a kernel that does not even start is a failure to report, not to hide
            row = {"notebook": path.name, "ok": False, "wall_s": None, "cpu_s": None, "peak_rss_mb": None}
            row["errors"] = [f"{type(exc).__name__}: {exc}"[:300]]
        rows.append(row)
        status = "passed" if row["ok"] else f"FAILED ({row['errors'][0]})"
        progress(f"  {path.name}: {status}, {row['wall_s']} s wall, {row['peak_rss_mb']} MB peak")
        if len(rows) < len(notebooks):  # an interrupted run still leaves the table so far in the run folder
            partial = _report(stamp, profile, machine, started, rows, collect_quality(results_dir), run_dir)
            partial["partial"] = f"{len(rows)} of {len(notebooks)} notebooks"
            (run_dir / f"benchmark-{profile}.md").write_text(markdown_report(partial))
    machine["load_average_1min_end"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    quality = collect_quality(results_dir)
    if real_floor and quality:
        quality.extend(real_floors(quality, env))
    return _report(stamp, profile, machine, started, rows, quality, run_dir)


def _report(stamp, profile, machine, started, rows, quality, run_dir) -> dict:
    return {
        "date_utc": stamp,
        "profile": profile,
        "machine": machine,
        "total_wall_s": round(time.perf_counter() - started, 1),
        "notebooks": rows,
        "quality": quality,
        "run_dir": str(run_dir),
    }


def _dataset_of(record: dict) -> str:
    for key in ("dataset", "data", "data_set", "dataset_name", "text"):
        if record.get(key):
            return str(record[key])
    return "?"


def collect_quality(results_dir: Path) -> list[dict]:
    """The figures the notebooks recorded with ``course_utils.results.record`` in ``results_dir``, in course order."""
    records = []
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            records.append({"kind": path.stem, "note": f"unreadable record: {exc}"})
            continue
        record.setdefault("kind", path.stem)
        records.append(record)
    return order_quality(records)


def order_quality(records: list[dict]) -> list[dict]:
    """Records in course order (autoencoder, vae, gan, diffusion, text model, others), real-image floors last."""

    def key(record: dict) -> tuple:
        kind = str(record.get("kind"))
        return (kind == "real", KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), kind)

    return sorted(records, key=key)


def real_floors(quality: list[dict], env: dict[str, str]) -> list[dict]:
    """The figures for real held-out images, per data set the models used, unless a notebook recorded them.

    Real test images are judged by the course's critic like samples: half of the held-out split (at most 1,000
    images) against the other half. A model cannot be expected to beat this row.
    """
    have = {_dataset_of(r) for r in quality if r.get("kind") == "real"}
    # Image models only (they carry a critic figure); "mnist 28x28" names the data set "mnist".
    images = [r for r in quality if r.get("kind") != "real" and ("mean_confidence" in r or "fid" in r)]
    wanted = sorted({_dataset_of(r) for r in images} - have - {"?"})
    if not wanted:
        return []
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the critic and data folders of this run
    floors = []
    try:
        from course_utils import critic
        from course_utils.data import load_dataset

        for name in wanted:
            try:
                test = load_dataset(name.split()[0], "test", verbose=False)
                n = min(1000, len(test) // 2)
                classifier = critic.get_critic(test, verbose=False)
                figures = critic.evaluate_samples(classifier, test.images[:n], test.images[n : 2 * n])
                floors.append({"kind": "real", "dataset": name, "n_images": n, **figures, "note": "held-out floor"})
            except Exception as exc:  # report, never hide
                floors.append({"kind": "real", "dataset": name, "note": f"floor not computed: {exc}"[:200]})
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return floors


def _fmt(value, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return spec.format(round(value, 9) + 0.0)  # + 0.0 turns -0.0 into 0.0, so it never prints "-0.00"
    if isinstance(value, int) and not isinstance(value, bool):
        return spec.format(value)
    return str(value)


_NOT_FIGURES = {"kind", "profile", "note", "dataset", "data", "data_set", "dataset_name", "text", "model"}


def _other_figures(record: dict) -> str:
    """Figures a record carries beyond the standard columns (e.g. a text model's bits per character), as text."""
    standard = {key for key, _, _ in QUALITY_COLUMNS} | _NOT_FIGURES
    parts = []
    for key, value in record.items():
        if key in standard or isinstance(value, (list, dict)):
            continue
        parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
    return ", ".join(parts) + ("; " if parts and record.get("note") else "")


def markdown_report(report: dict) -> str:
    """The report as markdown: machine, the notebook table, the quality table."""
    m = report["machine"]
    threads = m.get("torch_threads", "?")
    lines = [
        f"# Course benchmark ({report['profile']} profile, {report['date_utc']})"
        + (f" - partial, {report['partial']} so far" if report.get("partial") else ""),
        "",
        f"Machine: {m.get('cpu')}, {m.get('logical_cores')} logical cores"
        + (f" ({m['physical_cores']} physical)" if m.get("physical_cores") else "")
        + (f", {m['memory_gb']} GB RAM" if m.get("memory_gb") else "")
        + f"; Python {m.get('python')}, torch {m.get('torch')} ({threads} threads)"
        + f", CUDA {'yes' if m.get('cuda') else 'no'}; {m.get('os')}.",
        f"Load average (1 min) at start {m.get('load_average_1min', '?')}, at end {m.get('load_average_1min_end', '?')}"
        " (a load above the core count means the machine was shared and times are inflated).",
        "",
        "| notebook | result | wall time | CPU time | peak memory | checks passed | slowest cells | first error |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for row in report["notebooks"]:
        error = row["errors"][0].replace("|", "\\|").replace("\n", " ")[:120] if row.get("errors") else ""
        result = "passed" if row["ok"] else "**FAILED**"
        slowest = ", ".join(f"`{c['cell']}` {c['seconds']:.0f} s" for c in row.get("slowest_cells") or [])
        lines.append(
            f"| `{row['notebook']}` | {result} | {_fmt(row.get('wall_s'), '{:.1f} s')} "
            f"| {_fmt(row.get('cpu_s'), '{:.1f} s')} | {_fmt(row.get('peak_rss_mb'), '{:,.0f} MB')} "
            f"| {_fmt(row.get('passed'), '{}')} | {slowest} | {error} |"
        )
    passed = sum(r["ok"] for r in report["notebooks"])
    lines += ["", f"{passed} of {len(report['notebooks'])} notebooks passed; total {report['total_wall_s']:.0f} s."]
    quality = report.get("quality") or []
    lines += ["", "## Sample quality", ""]
    if not quality:
        lines.append("No notebook in this run recorded quality figures.")
    else:
        header = ["model", "data set"] + [title for _, title, _ in QUALITY_COLUMNS] + ["other figures, note"]
        lines += ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * len(QUALITY_COLUMNS) + "---|"]
        for rec in quality:
            kind = "real held-out images (floor)" if rec.get("kind") == "real" else str(rec.get("kind"))
            if rec.get("model"):
                kind += f" ({rec['model']})"
            cells = [kind, _dataset_of(rec)] + [_fmt(rec.get(key), spec) for key, _, spec in QUALITY_COLUMNS]
            cells.append(_other_figures(rec) + str(rec.get("note", "")).replace("|", "\\|"))
            lines.append("| " + " | ".join(cells) + " |")
        datasets = {_dataset_of(r) for r in quality}
        if not any(name.startswith("mnist") or name.startswith("fashion") for name in datasets):
            lines += ["", f"MNIST was not available: these figures are for {', '.join(sorted(datasets))}."]
        lines += [
            "",
            "Confidence: the critic's mean top-class probability on 1,000 samples (higher: clearer digits). Class "
            "entropy: of the predicted classes, 3.32 bits = all ten digits equally often (low: mode collapse). FID: "
            "Frechet distance in the critic's 128-d feature space against held-out real images (lower is better).",
        ]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out_dir: Path = DEFAULT_OUT) -> tuple[Path, Path]:
    """Write ``benchmark-<profile>.json`` and ``.md`` into ``out_dir`` (and a copy into the run folder)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text, table = json.dumps(report, indent=2), markdown_report(report)
    json_path, md_path = out_dir / f"benchmark-{report['profile']}.json", out_dir / f"benchmark-{report['profile']}.md"
    for folder in (out_dir, Path(report["run_dir"])):
        (folder / json_path.name).write_text(text)
        (folder / md_path.name).write_text(table)
    return json_path, md_path


def _busy_notebook(seconds: float):
    """A notebook whose one cell does a fixed amount of CPU work taking about ``seconds`` here."""
    from nbformat.v4 import new_code_cell, new_notebook

    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 0.2:  # calibrate: how many loop rounds fit in 0.2 s on this machine
        sum(i * i for i in range(10_000))
        n += 1
    rounds = int(n * seconds / 0.2)
    return new_notebook(cells=[new_code_cell(f"for _ in range({rounds}):\n    sum(i * i for i in range(10_000))")])


def measure_overhead(seconds: float = 10.0, repeats: int = 3) -> dict:
    """Time the same fixed-work notebook with a plain nbclient execution and with the benchmark's monitored runner.

    Both include starting and stopping a kernel. Runs alternate so that a change in machine load hits both; the
    medians are compared. Returns the medians and the overhead in percent.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = _busy_notebook(seconds)
    plain, monitored = [], []
    for _ in range(repeats):
        copy = json.loads(json.dumps(nb))
        start = time.perf_counter()
        NotebookClient(nbformat.from_dict(copy), timeout=600, kernel_name="python3").execute()
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        run_notebook(nbformat.from_dict(json.loads(json.dumps(nb))), timeout=600, cwd=Path.cwd())
        monitored.append(time.perf_counter() - start)
    p, m = statistics.median(plain), statistics.median(monitored)
    return {
        "work_seconds": seconds,
        "repeats": repeats,
        "plain_s": [round(x, 2) for x in plain],
        "monitored_s": [round(x, 2) for x in monitored],
        "median_plain_s": round(p, 2),
        "median_monitored_s": round(m, 2),
        "overhead_percent": round(100 * (m - p) / p, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line; exits 1 when a notebook failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=("full", "fast"), default="full", help="run profile (default: full)")
    parser.add_argument(
        "--notebook", default=os.environ.get("NOTEBOOK") or None, help="only these notebooks, e.g. 05 or 00,05"
    )
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOK_DIR, help="folder of the notebooks")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the report")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds one cell may run")
    parser.add_argument(
        "--keep-checkpoints", action="store_true", help="reuse the project's checkpoints (training is then skipped)"
    )
    parser.add_argument("--no-floor", action="store_true", help="skip the real-image floor row")
    parser.add_argument("--measure-overhead", type=float, metavar="SECONDS", help="only measure the runner's overhead")
    parser.add_argument("--table", type=Path, metavar="JSON", help="only print the table of a saved JSON report")
    args = parser.parse_args(argv)
    if args.table:
        print(markdown_report(json.loads(args.table.read_text())))
        return 0
    if args.measure_overhead:
        print(json.dumps(measure_overhead(args.measure_overhead), indent=2))
        return 0
    try:
        notebooks = list_notebooks(args.notebooks, args.notebook)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not notebooks:
        print(f"error: no notebooks in {args.notebooks}", file=sys.stderr)
        return 2
    report = run_benchmark(
        notebooks,
        args.profile,
        args.out,
        args.timeout,
        fresh_checkpoints=not args.keep_checkpoints,
        real_floor=not args.no_floor,
        progress=lambda message: print(message, file=sys.stderr, flush=True),
    )
    json_path, md_path = write_report(report, args.out)
    print(markdown_report(report))
    print(f"written: {json_path} and {md_path}", file=sys.stderr)
    return 0 if all(row["ok"] for row in report["notebooks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
