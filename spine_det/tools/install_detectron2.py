"""Install Detectron2 into the running Python environment, verified.

Detectron2's authors publish it only as source on GitHub. This script picks a source:

* ``DETECTRON2_SOURCE=git`` — the official repository at a pinned commit, built
  with its compiled ops (needs GitHub and a compiler; CUDA ops when nvcc is there).
* ``DETECTRON2_SOURCE=pypi`` — PyPI's ``pb1-detectron2==0.6``: Detectron2 v0.6's
  Python sources without the C++ sources, so its own setup.py fails. We download
  the sdist pinned by sha256 and copy only its ``detectron2/`` package into
  site-packages; ``spine_det.compat`` supplies what the missing extension would.
* ``DETECTRON2_SOURCE=auto`` (default) — ``git`` when GitHub answers, else ``pypi``; a
  failed official build also falls back to ``pypi`` (logged).

Re-running is cheap: nothing is done when the requested source is already installed.
The chosen source is recorded in the distribution's metadata, where
``spine-det doctor`` reads it.
"""
from __future__ import annotations

import argparse
import hashlib
import html
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import urllib.parse
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import List, Optional

OFFICIAL_REPO = "https://github.com/facebookresearch/detectron2.git"
OFFICIAL_COMMIT = "02b5c4e295e990042a714712c21dc79b731e8833"  # main of 2026-06-06
PYPI_REQUIREMENT = "pb1-detectron2==0.6"
PYPI_SDIST = "pb1-detectron2-0.6.tar.gz"
PYPI_SHA256 = "5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"
SOURCE_RECORD = "spine_det_source.json"  # written into detectron2's .dist-info
SOURCES = ("auto", "git", "pypi")
SOURCE_ENV = "DETECTRON2_SOURCE"


def log(msg: str) -> None:
    print(f"[install_detectron2] {msg}", flush=True)


def github_reachable(timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection(("github.com", 443), timeout=timeout):
            return True
    except OSError:
        return False


def installed_source() -> dict | None:
    """What is installed now: the record we wrote, or what pip knows of a git install."""
    try:
        dist = metadata.distribution("detectron2")
    except metadata.PackageNotFoundError:
        return None
    record = dist.read_text(SOURCE_RECORD)
    if record:
        return json.loads(record)
    direct = dist.read_text("direct_url.json")
    if direct:
        info = json.loads(direct)
        commit = info.get("vcs_info", {}).get("commit_id")
        if commit:
            return {"source": "git", "commit": commit, "url": info.get("url")}
    return {"source": "unknown", "version": dist.version}


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def install_from_git(commit: str) -> None:
    """Official source, compiled ops built against the installed torch."""
    req = f"detectron2 @ git+{OFFICIAL_REPO}@{commit}"
    log(f"building the official Detectron2 at {commit[:12]} (takes a few minutes)")
    # No build isolation: the extension must be compiled against the torch already installed.
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps", req], check=True
    )
    # pip records the commit in direct_url.json; installed_source() reads it back.


def package_index_url() -> str:
    """The index pip would use (PIP_INDEX_URL or pip's config), so mirrors keep working."""
    url = os.environ.get("PIP_INDEX_URL")
    if not url:
        out = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                             capture_output=True, text=True)
        url = out.stdout.strip() if out.returncode == 0 else ""
    return (url or "https://pypi.org/simple").rstrip("/")


def download_sdist(dest: Path) -> None:
    """Fetch the sdist through the index's simple API without running any of its code.

    (`pip download` would run the sdist's setup.py to read its metadata, and that
    setup.py imports torch and lists C++ sources the archive does not carry.)
    """
    index = package_index_url()
    page_url = f"{index}/{PYPI_REQUIREMENT.split('==')[0]}/"
    log(f"downloading {PYPI_SDIST} from {index} (sha256-pinned)")
    with urllib.request.urlopen(page_url, timeout=60) as resp:
        page = resp.read().decode("utf-8", "replace")
    links = [h for h in re.findall(r'href="([^"]+)"', page) if h.split("#")[0].endswith("/" + PYPI_SDIST)]
    if not links:
        raise SystemExit(f"{PYPI_SDIST} is not listed on {page_url}")
    url = urllib.parse.urljoin(page_url, html.unescape(links[0]).split("#")[0])
    with urllib.request.urlopen(url, timeout=120) as resp, open(dest, "wb") as f:
        shutil.copyfileobj(resp, f)


def _safe_members(tar: tarfile.TarFile, prefix: str):
    for m in tar.getmembers():
        name = m.name
        if not name.startswith(prefix) or m.issym() or m.islnk() or ".." in Path(name).parts:
            continue
        yield m


def install_from_pypi_sources(download_dir: Path | None = None) -> None:
    """PyPI's Python-only sources of v0.6, hash-checked, package directory only."""
    with tempfile.TemporaryDirectory(prefix="d2-sdist-") as tmp:
        tmp_path = Path(tmp)
        sdist = (download_dir / PYPI_SDIST) if download_dir else None
        if sdist is None or not sdist.exists():
            sdist = tmp_path / PYPI_SDIST
            download_sdist(sdist)
        digest = sha256_of(sdist)
        if digest != PYPI_SHA256:
            raise SystemExit(f"{sdist.name}: sha256 {digest} does not match the pinned {PYPI_SHA256}; refusing to install")

        prefix = "pb1-detectron2-0.6/detectron2/"
        extract = tmp_path / "src"
        with tarfile.open(sdist) as tar:
            members = list(_safe_members(tar, prefix))
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: refuse unsafe members outright
                tar.extractall(extract, members=members, filter="data")
            else:
                tar.extractall(extract, members=members)
        package = extract / prefix.rstrip("/")
        site = Path(sysconfig.get_paths()["purelib"])
        target = site / "detectron2"
        dist_info = site / "detectron2-0.6.dist-info"
        for old in (target, dist_info):
            if old.exists():
                shutil.rmtree(old)
        for stale in site.glob("detectron2-*.dist-info"):
            shutil.rmtree(stale)
        shutil.copytree(package, target)
        _write_dist_info(site, target, dist_info, digest)
        log(f"installed Detectron2 0.6 Python sources into {target.parent.name}/ (no compiled ops)")


def _write_dist_info(site: Path, package: Path, dist_info: Path, digest: str) -> None:
    """Minimal metadata so importlib.metadata and `pip uninstall detectron2` know the install."""
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: detectron2\nVersion: 0.6\n"
        "Summary: Detectron2 v0.6 Python sources from PyPI pb1-detectron2 (no compiled ops)\n"
    )
    (dist_info / "INSTALLER").write_text("spine_det\n")
    record = {
        "source": "pypi-sources",
        "requirement": PYPI_REQUIREMENT,
        "sha256": digest,
        "compiled_ops": False,
    }
    (dist_info / SOURCE_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    files = [p for p in package.rglob("*") if p.is_file()] + [p for p in dist_info.iterdir()]
    lines = [f"{p.relative_to(site).as_posix()},," for p in files]
    lines.append(f"{(dist_info / 'RECORD').relative_to(site).as_posix()},,")
    (dist_info / "RECORD").write_text("\n".join(lines) + "\n")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=SOURCES, default=os.environ.get(SOURCE_ENV) or "auto",
                        help=f"where to take Detectron2 from (env {SOURCE_ENV}; default auto)")
    parser.add_argument("--commit", default=os.environ.get("DETECTRON2_COMMIT", OFFICIAL_COMMIT),
                        help="official commit to build with --source git (env DETECTRON2_COMMIT)")
    parser.add_argument("--sdist-dir", type=Path, default=None,
                        help=f"folder that already holds {PYPI_SDIST} (offline install; still hash-checked)")
    parser.add_argument("--force", action="store_true", help="reinstall even if the requested source is present")
    args = parser.parse_args(argv)
    if args.source not in SOURCES:  # argparse checks --source, not a default taken from the environment
        parser.error(f"{SOURCE_ENV}={args.source!r} is not one of {', '.join(SOURCES)}")

    source = args.source
    if source == "auto":
        source = "git" if github_reachable() else "pypi"
        log(f"DETECTRON2_SOURCE=auto: GitHub {'reachable' if source == 'git' else 'not reachable'}, using {source}")

    current = installed_source()
    if current and not args.force:
        if source == "git" and current.get("source") == "git" and current.get("commit") == args.commit:
            log(f"official Detectron2 at {args.commit[:12]} already installed")
            return 0
        if source == "pypi" and current.get("source") in ("pypi-sources", "git"):
            log(f"Detectron2 already installed ({current['source']}); nothing to do")
            return 0

    if source == "git":
        try:
            install_from_git(args.commit)
        except (subprocess.CalledProcessError, OSError) as e:
            if args.source != "auto":
                raise
            # auto: a failed official build (no compiler, torch API change, network cut mid-way)
            # falls back to the verified PyPI sources, and says so.
            log(f"the official Detectron2 build failed ({e}); DETECTRON2_SOURCE=auto falls back to "
                "PyPI's verified sources (v0.6, hash-checked). Set DETECTRON2_SOURCE=git to make this an error.")
            install_from_pypi_sources(args.sdist_dir)
    else:
        install_from_pypi_sources(args.sdist_dir)
    return 0


def invoke_main() -> None:
    """The console entry point: run :func:`main` on ``sys.argv`` and exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    invoke_main()
