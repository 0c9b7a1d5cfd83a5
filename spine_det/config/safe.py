"""Config merging that never runs code from a YAML file and fails in one line.

Detectron2's ``CfgNode.merge_from_file`` defaults to ``allow_unsafe=True``: a YAML that
``yaml.safe_load`` rejects (``!!python/object/apply:os.system [...]``) is then read again with
``yaml.unsafe_load``, which runs it. Every config the package merges (its own files, the user's,
the ``config.yaml`` beside a checkpoint, the text stored inside one) goes through here instead:
safe loading only, and a :class:`ConfigError` naming the file, the key and the nearest valid key.
"""
from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, List, Optional, Sequence

import yaml

from spine_det.config.common import rename_old_keys, rename_old_opts
from spine_det.utils.errors import UserError

__all__ = ["ConfigError", "check_config_chain", "merge_from_file", "merge_from_list", "merge_yaml_text", "nearest_key"]


class ConfigError(UserError, ValueError):
    """A config that cannot be used: one line naming the file or the key."""


def _flat_keys(cfg: Any, prefix: str = "") -> List[str]:
    out = []
    for k, v in cfg.items():
        name = f"{prefix}{k}"
        out.append(name)
        if isinstance(v, dict):
            out.extend(_flat_keys(v, name + "."))
    return out


def nearest_key(cfg: Any, key: str) -> Optional[str]:
    """The valid key closest to a mistyped one (difflib), or None."""
    keys = _flat_keys(cfg)
    hits = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    if not hits:  # compare the last component only (MODEL.ROI_HEAD.NUM_CLASS -> ...NUM_CLASSES)
        by_leaf = {k.rsplit(".", 1)[-1]: k for k in keys}
        leaf = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(by_leaf), n=1, cutoff=0.8)
        hits = [by_leaf[leaf[0]]] if leaf else []
    return hits[0] if hits else None


def _explain(cfg: Any, exc: Exception, where: str) -> ConfigError:
    msg = str(exc.args[0]) if exc.args else str(exc)
    for marker in ("Non-existent config key: ", "Non-existent key: "):
        if marker in msg:
            key = msg.split(marker, 1)[1].strip().strip("'\"")
            near = nearest_key(cfg, key)
            return ConfigError(f"{where}: unknown config key {key}" + (f"; did you mean {near}?" if near else ""))
    first = msg.strip().splitlines()[0] if msg.strip() else type(exc).__name__
    return ConfigError(f"{where}: {first}")


BASE_KEY = "_BASE_"
_REMOTE = ("http://", "https://")


def _yaml_error(where: str, e: "yaml.YAMLError") -> ConfigError:
    """One line for a YAML file safe loading refuses: a tag that would construct Python objects, or broken YAML."""
    if isinstance(e, yaml.constructor.ConstructorError):
        return ConfigError(f"{where}: refused: it uses a YAML tag that safe loading does not allow ({e.problem}); "
                           "configs are plain YAML, nothing in them is executed")
    return ConfigError(f"{where}: not valid YAML ({str(e).splitlines()[0]})")


def _read_config_mapping(path: Path, where: str) -> dict:
    """The YAML mapping in ``path`` (``yaml.safe_load``), or a :class:`ConfigError` naming ``where``: a
    binary file, a YAML tag that safe loading refuses, broken YAML, a list or a scalar."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not a YAML config (binary content, not UTF-8 text)") from None
    except OSError as e:
        raise ConfigError(f"{where}: cannot be read ({e.strerror or type(e).__name__})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise _yaml_error(where, e) from None
    if not isinstance(data, dict):
        kinds = {type(None): "an empty file", str: "plain text", list: "a YAML list"}
        what = kinds.get(type(data), f"a single value ({data!r})")
        raise ConfigError(f"{where}: not a config: {what} where a mapping of KEY: value is expected")
    return data


def check_config_chain(path: str | Path, _chain: Sequence[Path] = ()) -> None:
    """Read ``path`` and every ``_BASE_`` it names (recursively, resolved as fvcore does: relative to the
    file that names it) and raise :class:`ConfigError` in one line for the first that is not a plain YAML
    mapping, is missing, or leads back to a file already in the chain (a cycle, which fvcore follows
    until Python's recursion limit). Remote (``http(s)://``) bases are left to fvcore."""
    p = Path(path)
    here = p.resolve()
    if _chain:
        parent = _chain[-1]
        where = f"{p} (the _BASE_ of {parent})"
        if here in _chain:
            loop = " -> ".join(c.name for c in (*_chain, here))
            raise ConfigError(f"{parent}: _BASE_ {p} makes a cycle ({loop}); a config cannot inherit from itself")
        if not p.is_file():
            raise ConfigError(f"{parent}: _BASE_ config not found: {p}")
    else:
        where = str(p)
    data = _read_config_mapping(p, where)
    bases = data.get(BASE_KEY)
    if bases is None:
        return
    for base in bases if isinstance(bases, list) else [bases]:
        if not isinstance(base, str) or not base:
            raise ConfigError(f"{p}: {BASE_KEY} names a YAML file (or a list of them), not {base!r}")
        if base.startswith(_REMOTE):
            continue
        b = Path(base).expanduser()
        check_config_chain(b if b.is_absolute() else p.parent / b, (*_chain, here))


def merge_from_file(cfg: Any, path: str | Path) -> None:
    """``cfg.merge_from_file(path, allow_unsafe=False)`` (``_BASE_`` files included) with one-line errors."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {path}")
    check_config_chain(p)  # lists, scalars, binary files and _BASE_ cycles: one line, before fvcore sees them
    try:
        loaded = cfg.load_yaml_with_base(str(p), allow_unsafe=False)
        renamed = rename_old_keys(cfg, copy.deepcopy(loaded), str(path))
        if renamed != loaded:  # old key names (deprecated): merge the renamed mapping
            cfg.merge_from_other_cfg(type(cfg)(renamed))
        else:
            cfg.merge_from_file(str(p), allow_unsafe=False)
    except yaml.YAMLError as e:
        raise _yaml_error(str(path), e) from None
    except (KeyError, ValueError, AssertionError, TypeError) as e:
        raise _explain(cfg, e, str(path)) from None


def merge_from_list(cfg: Any, opts: Sequence[str]) -> None:
    """``cfg.merge_from_list(opts)`` (command-line KEY VALUE pairs) with one-line errors."""
    opts = list(opts)
    if len(opts) % 2:
        raise ConfigError(f"config overrides come in KEY VALUE pairs; got an odd number: {opts}")
    opts = rename_old_opts(cfg, opts)
    try:
        cfg.merge_from_list(opts)
    except (KeyError, ValueError, AssertionError, TypeError) as e:
        raise _explain(cfg, e, "command-line override") from None


def merge_yaml_text(cfg: Any, text: str, where: str) -> Any:
    """Merge YAML ``text`` (e.g. the config stored in a checkpoint) into ``cfg`` with ``yaml.safe_load``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: not a config (a {type(data).__name__}, not a mapping)")

    data = rename_old_keys(cfg, data, where)
    try:
        cfg.merge_from_other_cfg(type(cfg)(data))
    except (KeyError, ValueError, AssertionError, TypeError) as e:
        raise _explain(cfg, e, where) from None
    return cfg
