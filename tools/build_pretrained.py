"""Rebuild the course's pretrained weights (``course_utils/pretrained_weights``): ``make pretrained``.

Runs every notebook in the full profile, one after another in fresh kernels with a fresh checkpoint folder (the
benchmark's runner, so the report of times and quality figures comes with it), on the data set named by
``--dataset`` (default: the bundled digits, the world every fresh clone gets). Then it packs each finished
checkpoint (:func:`course_utils.pretrained.pack`: optimizer states emptied), records the SHA-256 of each in
``MANIFEST.json`` and checks the 20 MB budget. Entries for other data sets are kept.

Usage::

    python tools/build_pretrained.py                      # digits: run the notebooks (about 20 min), then pack
    python tools/build_pretrained.py --from build/benchmark/run-full-.../checkpoints   # pack an earlier run
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from course_utils import pretrained  # noqa: E402
from tools.benchmark import markdown_report, run_benchmark  # noqa: E402
from tools.nbrun import PROJECT_ROOT, list_notebooks  # noqa: E402

BUDGET_BYTES = 20 * 1024 * 1024


def pack_folder(folder: Path, weights_dir: Path) -> dict[str, dict]:
    """Pack every full-profile checkpoint in ``folder`` into ``weights_dir``; return the new manifest entries."""
    entries = {}
    paths = sorted({*Path(folder).glob("*-full.pt"), *Path(folder).glob("*-full-*.pt")})  # and companions
    for path in paths:
        if path.name.endswith(".stale.pt"):
            continue
        entries[path.name] = pretrained.pack(path, weights_dir)
        print(f"  packed {path.name}: {entries[path.name]['bytes'] / 1e6:.2f} MB")
    if not entries:
        raise SystemExit(f"no full-profile checkpoints (*-full.pt) in {folder}")
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits", help="COURSE_DATASET for the training run (default: digits)")
    parser.add_argument("--from", dest="source", type=Path, help="pack this checkpoint folder instead of training")
    parser.add_argument("--weights-dir", type=Path, default=pretrained.WEIGHTS_DIR)
    args = parser.parse_args(argv)

    source = args.source
    if source is None:
        os.environ["COURSE_DATASET"] = args.dataset
        os.environ.pop("COURSE_PRETRAINED", None)  # the weights are trained, never copied from older weights
        report = run_benchmark(list_notebooks(), "full", PROJECT_ROOT / "build" / "pretrained")
        print(markdown_report(report))
        if not all(row["ok"] for row in report["notebooks"]):
            print("a notebook failed: the weights were not packed", file=sys.stderr)
            return 1
        source = Path(report["run_dir"]) / "checkpoints"
    new = pack_folder(source, args.weights_dir)
    kept = {
        name: entry
        for name, entry in pretrained.manifest(args.weights_dir).items()
        if name not in new and (args.weights_dir / name).exists()
    }
    entries = kept | new
    pretrained.write_manifest(entries, args.weights_dir)
    total = sum(entry["bytes"] for entry in entries.values())
    print(f"{len(entries)} files, {total / 2**20:.1f} MiB in all (budget {BUDGET_BYTES / 2**20:.0f} MiB)")
    if total > BUDGET_BYTES:
        print("over the 20 MB budget: ship fewer data sets or smaller models", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
