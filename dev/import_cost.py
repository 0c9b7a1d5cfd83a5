"""Dev: what importing each module of the package costs, each in a fresh interpreter: seconds, and which
heavy libraries it pulls in (torch, detectron2, cv2, scipy, pydicom, matplotlib, ...). Run it before and
after moving imports to module top, to see which module's start-up a move slows:

    nice -n 19 python dev/import_cost.py [MODULE_PREFIX ...] [--repeat 3] [--tools]

``--tools`` times ``python -m spine_det.tools <tool> --help`` for every tool instead (and ``--help`` itself).
The time is the best of ``--repeat`` runs (the machine is shared: the minimum is the least disturbed).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Tuple

HEAVY = ("torch", "torchvision", "detectron2", "cv2", "scipy", "pydicom", "matplotlib", "skimage", "tifffile",
         "pycocotools", "segmentation_models_pytorch", "tensorboard", "fvcore", "yaml", "PIL", "numpy")
PACKAGE = Path(__file__).resolve().parents[1] / "spine_det"
PROBE = ("import sys, time, importlib; t = time.perf_counter(); importlib.import_module(sys.argv[1]); "
         "dt = time.perf_counter() - t; print(round(dt, 3), ' '.join(m for m in sys.argv[2:] if m in sys.modules))")


def modules(prefixes: List[str]) -> List[str]:
    out = []
    for f in sorted(PACKAGE.rglob("*.py")):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        if not prefixes or any(name == p or name.startswith(p + ".") for p in prefixes):
            out.append(name)
    return out


def time_module(name: str, repeat: int) -> Tuple[float, str]:
    best, heavy = float("inf"), ""
    for _ in range(repeat):
        run = subprocess.run([sys.executable, "-c", PROBE, name, *HEAVY], capture_output=True, text=True)
        if run.returncode:
            return float("nan"), "import failed: " + (run.stderr.strip().splitlines() or ["?"])[-1]
        dt, _, heavy = run.stdout.strip().partition(" ")
        best = min(best, float(dt))
    return best, heavy


def time_tool(args: List[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "spine_det.tools", *args], capture_output=True)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("prefixes", nargs="*", help="module names or prefixes (default: every module)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tools", action="store_true", help="time `spine-det <tool> --help` per tool instead")
    a = ap.parse_args()
    if a.tools:
        sys.path.insert(0, str(PACKAGE.parent))
        from spine_det.tools.__main__ import COMMANDS

        print("| command | seconds (best of %d) |\n|---|---:|" % a.repeat)
        print(f"| spine-det --help | {time_tool(['--help'], a.repeat):.2f} |")
        for name in COMMANDS:
            print(f"| spine-det {name.replace('_', '-')} --help | {time_tool([name, '--help'], a.repeat):.2f} |")
        return
    print("| module | seconds (best of %d) | heavy libraries loaded |\n|---|---:|---|" % a.repeat)
    for name in modules(a.prefixes):
        dt, heavy = time_module(name, a.repeat)
        print(f"| {name} | {dt:.2f} | {heavy} |")


if __name__ == "__main__":
    main()
