"""The package ships its configs: one resolver finds them, and a built wheel carries all of them."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from spine_det.config.paths import config_dir, resolve_config_file

REPO = Path(__file__).resolve().parents[1]


def test_resolve_by_name_and_by_path(tmp_path, monkeypatch):
    assert config_dir() == (REPO / "configs").resolve()
    assert resolve_config_file("lat_vertebra.yaml") == (REPO / "configs" / "lat_vertebra.yaml").resolve()
    assert resolve_config_file("linknet/ap_vertebra") == (REPO / "configs" / "linknet" / "ap_vertebra.yaml").resolve()
    # The checkout spelling works from any folder, as a name.
    monkeypatch.chdir(tmp_path)
    assert resolve_config_file("configs/linknet/lat_vertebra.yaml") == (REPO / "configs/linknet/lat_vertebra.yaml").resolve()
    # A real file wins over a shipped config of the same name.
    own = tmp_path / "lat_vertebra.yaml"
    own.write_text("_BASE_: x\n")
    assert resolve_config_file("lat_vertebra.yaml") == own.resolve()
    with pytest.raises(FileNotFoundError, match="no_such_task"):
        resolve_config_file("no_such_task.yaml")


def test_wheel_ships_every_config(tmp_path):
    """A non-editable install gets ``spine_det/configs`` with every YAML of the top-level ``configs/``;
    built from exactly what the Docker image's runtime stage copies."""
    pytest.importorskip("setuptools")
    src = copy_docker_context(tmp_path / "src")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("spine_det-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"spine_det/configs/" + p.relative_to(REPO / "configs").as_posix() for p in (REPO / "configs").rglob("*.yaml")}
    assert expected and expected <= names, sorted(expected - names)[:5]
    assert "spine_det/config/paths.py" in names and "spine_det/resources/reported_results.csv" in names
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "spine-det = spine_det.tools.__main__:invoke_main" in zipfile.ZipFile(wheel).read(entry_points).decode()


WRAPPER = re.compile(
    r'#!/usr/bin/env python\n"""[^\n]+ \(code: spine_det\.tools\.(?P<name>\w+)\)\."""\n'
    r"from spine_det\.tools\.(?P=name) import invoke_main\n\nif __name__ == \"__main__\":\n    invoke_main\(\)\n\Z")


def test_tools_follow_the_convention():
    """Every tool module has main + invoke_main and a spine-det command; every tools/<name>.py whose
    module is in the package is exactly the thin wrapper; no development script among the tools."""
    import importlib

    from spine_det.tools.__main__ import COMMANDS

    modules = sorted(p.stem for p in (REPO / "spine_det" / "tools").glob("*.py") if not p.stem.startswith("__"))
    assert set(modules) <= set(COMMANDS), set(modules) - set(COMMANDS)
    for name in modules:
        mod = importlib.import_module(f"spine_det.tools.{name}")
        assert callable(mod.main) and callable(mod.invoke_main), name
    for script in sorted((REPO / "tools").glob("*.py")):
        if script.stem in modules:
            m = WRAPPER.match(script.read_text(encoding="utf-8"))
            assert m and m.group("name") == script.stem, f"{script.name} is not the thin wrapper"
    for dev_script in ("ablation_thin", "anchor_stats", "bench_evaluator", "bench_linknet"):
        assert not (REPO / "tools" / f"{dev_script}.py").exists() and (REPO / "dev" / f"{dev_script}.py").is_file()


def test_spine_det_command_dispatches_by_name(capsys, monkeypatch):
    from spine_det.tools.__main__ import COMMANDS, main

    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert all(n.replace("_", "-") in listed for n in COMMANDS)
    for registry_tool in ("train_net", "train_linknet", "predict", "benchmark"):
        assert registry_tool in COMMANDS
    assert main([]) == 2
    capsys.readouterr()
    assert main(["make-phantm"]) == 2
    assert "did you mean make-phantom?" in capsys.readouterr().err
    # "-" and "_" alike; the tool's usage line names the command; the tool's exit code comes back
    with pytest.raises(SystemExit) as e:
        main(["make_phantom", "--help"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("usage: spine-det make-phantom")
    assert main(["tasks"]) == 0 and "lat_vertebra" in capsys.readouterr().out
    monkeypatch.setitem(COMMANDS, "no_such_tool", "a command whose module is absent")
    assert main(["no-such-tool"]) == 2 and "has no spine_det.tools.no_such_tool" in capsys.readouterr().err


# --------------------------------------------------------------------------- what the install claims


def setup_kwargs(monkeypatch) -> dict:
    """The keyword arguments setup.py gives setuptools.setup (run with setup() captured)."""
    import runpy

    import setuptools

    captured: dict = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kw: captured.update(kw))
    runpy.run_path(str(REPO / "setup.py"), run_name="__main__")
    return captured


def constraint_pins() -> dict:
    pins = {}
    for line in (REPO / "requirements" / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.strip()] = version.strip()
    return pins


def lowest_python(spec) -> tuple:
    """The lowest 3.x a Requires-Python specifier allows."""
    from packaging.version import Version

    return next((3, m) for m in range(0, 40) if spec.contains(Version(f"3.{m}"), prereleases=True))


def test_python_requires_is_what_the_pins_need(monkeypatch):
    """python_requires is the highest Requires-Python lower bound of the pinned versions (read from the
    installed distributions' metadata): not looser (pip would install on a Python the pins refuse), not
    stricter."""
    from importlib import metadata

    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    ours = lowest_python(SpecifierSet(setup_kwargs(monkeypatch)["python_requires"]))
    needs = {}
    for name, pinned in constraint_pins().items():
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if Version(dist.version).release != Version(pinned).release or not dist.metadata.get("Requires-Python"):
            continue
        needs[canonicalize_name(name)] = lowest_python(SpecifierSet(dist.metadata["Requires-Python"]))
    assert {"numpy", "scipy", "matplotlib", "pillow", "scikit-image", "networkx"} <= set(needs)
    assert {n: v for n, v in needs.items() if v > ours} == {}, f"python_requires allows 3.{ours[1]}"
    assert ours == max(needs.values())


def test_requirements_agree_and_allow_the_pins(monkeypatch):
    """A package named by install_requires and by extras (bench and smp both install smp) has one
    specifier, and every specifier allows the version constraints.txt pins."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    kw = setup_kwargs(monkeypatch)
    specs: dict = {}
    for where, reqs in [("install_requires", kw["install_requires"]), *kw["extras_require"].items()]:
        for r in map(Requirement, reqs):
            specs.setdefault(canonicalize_name(r.name), {})[where] = r.specifier
    assert {n: {w: str(s) for w, s in by.items()} for n, by in specs.items() if len({str(s) for s in by.values()}) > 1} == {}
    assert str(specs["segmentation-models-pytorch"]["bench"]) == ">=0.5"
    pins = {canonicalize_name(n): v for n, v in constraint_pins().items()}
    refused = {n: (str(s), pins[n]) for n, by in specs.items() for s in by.values()
               if n in pins and not s.contains(Version(pins[n]), prereleases=True)}
    assert refused == {}


def test_classifiers_name_the_tested_python(monkeypatch):
    """The Python classifiers are allowed by python_requires, and the Docker image's Python is one of them."""
    from packaging.specifiers import SpecifierSet

    kw = setup_kwargs(monkeypatch)
    tested = {c.rsplit(" :: ", 1)[1] for c in kw["classifiers"] if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)}
    assert tested and all(SpecifierSet(kw["python_requires"]).contains(v) for v in tested)
    images = set(re.findall(r"^FROM python:(3\.\d+)-", (REPO / "Dockerfile").read_text(encoding="utf-8"), re.M))
    assert images and images <= tested, (images, tested)


def test_citation_is_cff_with_the_works_it_builds_on():
    import yaml

    import spine_det

    cff = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0" and str(cff["version"]) == spine_det.__version__
    refs = cff["references"]
    for r in refs:
        assert r["type"] in {"software", "article", "conference-paper", "report", "data"}, r
        assert isinstance(r["title"], str) and r["title"] and r["authors"], r
        for a in r["authors"]:
            assert a.get("name") or (a.get("family-names") and a.get("given-names")), r["title"]
        assert "doi" not in r or re.fullmatch(r"10\.\d{4,9}/[-._;()/:A-Za-z0-9]+", str(r["doi"])), r["title"]
    titles = " | ".join(r["title"] for r in refs)
    for work in ("Detectron2", "Mask R-CNN", "LinkNet", "nnU-Net", "Segmentation Models Pytorch", "BoostNet",
                 "Segmentation of a Novel Spine Dataset"):
        assert work in titles, work


# --------------------------------------------------------------------------- Docker


def docker_stages() -> list:
    """The Dockerfile's stages, each as its instruction lines (comments and continuations joined)."""
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n\s*", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#")))
    stages: list = []
    for line in filter(None, (ln.strip() for ln in text.splitlines())):
        if line.startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def docker_copied_paths() -> list:
    """What the runtime stage copies from the build context."""
    return [p for ln in docker_stages()[-1] if ln.startswith("COPY ") and "--from" not in ln for p in ln.split()[1:-1]]


def copy_docker_context(dest: Path) -> Path:
    """A copy of what the runtime stage copies (what ``pip install --no-deps .`` builds from)."""
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in docker_copied_paths():
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, dest / name, ignore=ignore)
        else:
            shutil.copy(REPO / name, dest / name)
    return dest


def test_dockerfile_installs_dependencies_first_and_ships_cuda_once():
    """Builder: the pinned requirement files setup.py reads, installed before any package source; CUDA only
    there (nvcc from NVIDIA's repository, no cuDNN). Runtime: the builder's venv, then the source, then the
    package itself with --no-deps; the same Python as the builder; no system CUDA; uid 1000 owns /output."""
    builder, runtime = docker_stages()
    assert builder[0].startswith("FROM python:3.11-bookworm AS ") and runtime[0].startswith("FROM python:3.11-slim-bookworm")
    assert not any("nvidia/cuda" in s[0] or "cudnn" in " ".join(s).lower() for s in (builder, runtime))
    assert any("cuda-minimal-build" in ln for ln in builder) and not any("cuda" in ln for ln in runtime if ln.startswith("RUN"))

    deps = next(i for i, ln in enumerate(builder) if "-r requirements/runtime.txt" in ln)
    assert "-c requirements/constraints.txt" in builder[deps] and "-r requirements/smp.txt" in builder[deps]
    assert [ln for ln in builder[:deps] if ln.startswith("COPY")] == ["COPY requirements ./requirements"]
    d2 = next(i for i, ln in enumerate(builder) if "install_detectron2.py" in ln and ln.startswith("RUN"))
    assert d2 > deps and all("spine_det/tools/install_detectron2.py" in ln for ln in builder if ln.startswith("COPY spine_det"))

    venv = runtime.index("COPY --from=builder /opt/venv /opt/venv")
    first_source = next(i for i, ln in enumerate(runtime) if ln.startswith("COPY spine_det"))
    install = next(i for i, ln in enumerate(runtime) if "pip install" in ln)
    assert venv < first_source < install and "--no-deps" in runtime[install]
    assert {"setup.py", "requirements", "spine_det", "configs"} <= set(docker_copied_paths())
    ignored = {ln.strip() for ln in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
               if ln.strip() and not ln.startswith("#")}
    assert {".venv", "output", "datasets", ".git"} <= ignored and not ignored & set(docker_copied_paths())
    assert "USER 1000:1000" in runtime and any("chown spine:spine /output" in ln for ln in runtime)


def test_the_builder_runs_the_detectron2_installer_without_the_package(tmp_path):
    """The builder copies only install_detectron2.py (so a code edit does not rebuild Detectron2): the
    installer must run on the standard library alone."""
    shutil.copy(REPO / "spine_det" / "tools" / "install_detectron2.py", tmp_path / "install_detectron2.py")
    r = subprocess.run([sys.executable, "-I", "-S", "install_detectron2.py", "--help"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 0 and "--source" in r.stdout and "--commit" in r.stdout, r.stderr[-1000:]


def test_sdist_carries_what_setup_reads(tmp_path):
    """setup.py reads requirements/*.txt and spine_det/version.py: an sdist must carry them (MANIFEST.in)."""
    import tarfile

    src = copy_docker_context(tmp_path / "src")
    r = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path / "dist"), "--formats=gztar"],
                       cwd=src, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    (sdist,) = (tmp_path / "dist").glob("spine_det-*.tar.gz")
    names = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
    assert {"setup.py", "spine_det/version.py", "requirements/runtime.txt", "requirements/smp.txt"} <= names
