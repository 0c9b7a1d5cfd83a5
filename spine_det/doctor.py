"""``spine-det doctor``: say what this environment runs on, then prove a Mask R-CNN works.

Exit 0 when a Mask R-CNN builds from the package's config and runs one forward pass;
exit 1 with one line saying what is wrong otherwise.
"""
from __future__ import annotations

import json
import platform
import sys
import time
import warnings
from importlib import metadata
from typing import Dict, Optional


def detectron2_origin() -> Dict[str, str]:
    """Version of the installed Detectron2 and where it came from (official build or PyPI sources)."""
    from spine_det import compat

    try:
        dist = metadata.distribution("detectron2")
    except metadata.PackageNotFoundError:
        return {"installed": "no"}
    info = {"installed": "yes", "version": dist.version, "compiled_ops": "yes" if compat.has_compiled_ops() else "no"}
    record = dist.read_text("spine_det_source.json")
    direct = dist.read_text("direct_url.json")
    if record:
        rec = json.loads(record)
        info["source"] = f"PyPI {rec.get('requirement')} Python sources, sha256 {rec.get('sha256', '')[:12]}… (spine_det.compat shims active)"
    elif direct:
        d = json.loads(direct)
        commit = d.get("vcs_info", {}).get("commit_id")
        info["source"] = f"official build from {d.get('url')} @ {commit}" if commit else f"local build from {d.get('url')}"
    else:
        info["source"] = "installed by another tool (official build assumed)"
    return info


def _line(key: str, value: object) -> None:
    print(f"{key:24s} {value}")


def run_doctor(device: Optional[str] = None, forward: bool = True) -> int:
    # torch's own deprecation chatter would drown the report.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*meshgrid.*")
    try:
        import torch
        import torchvision
    except ImportError as exc:
        print(f"doctor: FAILED: torch/torchvision not importable ({exc}); run `make install`")
        return 1
    _line("python", f"{platform.python_version()} ({sys.executable})")
    _line("platform", platform.platform())
    _line("torch", torch.__version__)
    _line("torchvision", torchvision.__version__)
    cuda = torch.cuda.is_available()
    _line("cuda available", cuda)
    if cuda:
        _line("cuda device", f"{torch.cuda.get_device_name(0)} (x{torch.cuda.device_count()}, CUDA {torch.version.cuda})")
    d2 = detectron2_origin()
    if d2["installed"] != "yes":
        print("doctor: FAILED: Detectron2 is not installed; run `make install` (tools/install_detectron2.py)")
        return 1
    _line("detectron2", d2["version"])
    _line("detectron2 source", d2["source"])
    _line("detectron2 compiled ops", d2["compiled_ops"] + ("" if d2["compiled_ops"] == "yes" else
          " (rotated boxes, deformable conv, fast COCO eval unavailable; Mask R-CNN unaffected)"))
    if not forward:
        return 0
    device = device or ("cuda" if cuda else "cpu")
    try:
        params, seconds, n_out = _forward_once(device)
    except Exception as exc:  # the one line the user needs, not a traceback
        print(f"doctor: FAILED: Mask R-CNN forward pass on {device}: {type(exc).__name__}: {exc}")
        return 1
    _line("mask r-cnn forward", f"ok on {device}: {params / 1e6:.1f} M parameters, {seconds:.2f} s, {n_out} output(s)")
    print("doctor: OK")
    return 0


def _forward_once(device: str):
    """Build the package's Mask R-CNN (CPU profile: random init, GN) and run one image through it."""
    import torch

    from spine_det.config import get_spine_cfg
    from spine_det.config.paths import resolve_config_file

    cfg = get_spine_cfg(resolve_config_file("lat_vertebra.yaml"), profile="cpu", opts=["MODEL.DEVICE", device])
    from detectron2.modeling import build_model  # after get_spine_cfg imported spine_det.compat

    model = build_model(cfg).eval()
    image = torch.randint(0, 256, (3, 256, 160), dtype=torch.uint8).float()
    start = time.perf_counter()
    with torch.no_grad():
        out = model([{"image": image.to(device), "height": 256, "width": 160}])
    seconds = time.perf_counter() - start
    return sum(p.numel() for p in model.parameters()), seconds, len(out)
