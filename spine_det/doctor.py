"""``spine-det doctor``: say what this environment runs on, then prove a Mask R-CNN works.

Exit 0 when a Mask R-CNN builds from the package's config and runs one forward pass;
exit 1 with one line saying what is wrong and the command that repairs it for the way this copy
was installed (:func:`install_method`: a checkout's ``make install``, ``pip install``, Docker).
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Dict, Optional
from urllib.parse import unquote, urlparse

import spine_det
from spine_det import __version__, compat
from spine_det.config import get_spine_cfg
from spine_det.config.paths import resolve_config_file

# torch, torchvision and Detectron2 are imported where the report reaches them: the doctor names a missing
# or broken install in one line instead of failing to start.

MAKE_STAMP = ".spine_det-installed"  # the Makefile's record that `make install` finished
# Set by the package's own Dockerfile: only that image is repaired by rebuilding it. Any other container
# (a dev container, a CI runner, a sandbox) holds an ordinary pip or checkout install.
IMAGE_ENV = "SPINE_DET_DOCKER_IMAGE"


@dataclass(frozen=True)
class InstallMethod:
    """How the running spine_det was installed: that decides which command repairs it.

    ``kind``: ``make`` (a checkout's own ``.venv``, made by ``make install``), ``docker`` (inside the
    package's own Docker image), ``editable`` (``pip install -e`` of a checkout into another environment) or ``pip``
    (an installed copy); ``source``: the checkout, when there is one."""

    kind: str
    source: Optional[Path] = None

    def describe(self) -> str:
        src = f" {self.source}" if self.source else ""
        return {"make": f"make install: the .venv of{src}", "docker": f"the spine_det Docker image{src and ', from' + src}",
                "editable": f"pip install -e{src}", "pip": "pip install, no checkout"}[self.kind]


def source_checkout(package_dir: Path) -> Optional[Path]:
    """The repository the package is imported from (its Makefile and setup.py beside the package),
    or None for a copy installed into site-packages."""
    root = Path(package_dir).resolve().parent
    return root if (root / "Makefile").is_file() and (root / "setup.py").is_file() else None


def editable_source() -> Optional[Path]:
    """The folder of an editable install, from pip's ``direct_url.json`` (PEP 610), or None."""
    try:
        direct = metadata.distribution("spine_det").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    try:
        d = json.loads(direct or "null")
    except ValueError:  # a damaged record: no claim either way
        return None
    url = d.get("url", "") if isinstance(d, dict) else ""
    if not d or not d.get("dir_info", {}).get("editable") or not url.startswith("file://"):
        return None
    return Path(unquote(urlparse(url).path))


def install_method(package_dir: Optional[Path] = None, prefix: Optional[str] = None,
                   in_container: Optional[bool] = None, editable: Optional[Path] = None) -> InstallMethod:
    """Tell the install method from where the package is imported from (``package_dir``), the running
    environment (``prefix``: ``sys.prefix``), whether this is the package's Docker image (``in_container``:
    its :data:`IMAGE_ENV`), and pip's editable record;
    each input defaults to this process's own."""
    if package_dir is None:
        package_dir = Path(spine_det.__file__).resolve().parent
    checkout = source_checkout(Path(package_dir))
    env = Path(prefix or sys.prefix).resolve()
    if checkout is not None and env == (checkout / ".venv").resolve():
        return InstallMethod("make", checkout)
    if in_container is None:
        in_container = os.environ.get(IMAGE_ENV) == "1"
    if editable is None and checkout is None:
        editable = editable_source()
    source = checkout or editable
    if in_container:
        return InstallMethod("docker", source)
    return InstallMethod("editable", source) if source is not None else InstallMethod("pip")


def spine_det_command() -> str:
    """How to call this environment's ``spine-det``: the bare name when it is the one on PATH, else its
    full path (a venv that is not activated), else ``python -m spine_det.tools``."""
    script = Path(sys.executable).parent / "spine-det"
    if script.is_file():
        on_path = shutil.which("spine-det")
        return "spine-det" if on_path and Path(on_path).resolve() == script.resolve() else str(script)
    return f"{sys.executable} -m spine_det.tools"


def repair_command(problem: str, method: InstallMethod, spine_det: str = "spine-det") -> str:
    """The command that installs what ``problem`` (``torch`` or ``detectron2``) says is missing, for
    ``method``; ``spine_det``: how to call this environment's ``spine-det``."""
    if method.kind == "make":
        # the stamp says `make install` finished, so plain `make install` would do nothing now
        done = method.source is not None and (method.source / ".venv" / MAKE_STAMP).is_file()
        return f"`make {'-B ' if done else ''}install` in {method.source}"
    if problem == "detectron2":
        fix = f"`{spine_det} install-detectron2`"
        if method.kind == "docker":
            return f"{fix} in this container, or rebuild the image (`docker build -t spine_det .`)"
        return fix + " (DETECTRON2_SOURCE=auto|git|pypi)"
    if method.kind == "docker":
        return "`docker build -t spine_det .` (rebuild the image)"
    if method.kind == "editable":
        return f"`pip install -c requirements/constraints.txt -e .` in {method.source}"
    return "`pip install torch torchvision` in this environment"


def detectron2_origin() -> Dict[str, str]:
    """Version of the installed Detectron2 and where it came from (official build or PyPI sources)."""
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
        fix = repair_command("torch", install_method(), spine_det_command())
        print(f"doctor: FAILED: torch/torchvision not importable ({exc}); run {fix}")
        return 1

    method = install_method()
    _line("spine_det", f"{__version__} ({method.describe()})")
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
        print(f"doctor: FAILED: Detectron2 is not installed; run {repair_command('detectron2', method, spine_det_command())}")
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
    except Exception as exc:  # noqa: BLE001  (whatever breaks the forward pass: the one line the user needs, not a traceback)
        print(f"doctor: FAILED: Mask R-CNN forward pass on {device}: {type(exc).__name__}: {exc}")
        return 1
    _line("mask r-cnn forward", f"ok on {device}: {params / 1e6:.1f} M parameters, {seconds:.2f} s, {n_out} output(s)")
    print("doctor: OK")
    return 0


def _forward_once(device: str):
    """Build the package's Mask R-CNN (CPU profile: random init, GN) and run one image through it."""
    import torch

    cfg = get_spine_cfg(resolve_config_file("lat_vertebra.yaml"), profile="cpu", opts=["MODEL.DEVICE", device])
    from detectron2.modeling import build_model  # after get_spine_cfg imported spine_det.compat

    model = build_model(cfg).eval()
    image = torch.randint(0, 256, (3, 256, 160), dtype=torch.uint8).float()
    start = time.perf_counter()
    with torch.no_grad():
        out = model([{"image": image.to(device), "height": 256, "width": 160}])
    seconds = time.perf_counter() - start
    return sum(p.numel() for p in model.parameters()), seconds, len(out)
