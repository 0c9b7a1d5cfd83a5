"""The package's command-line tools, one module each (``python -m spine_det.tools.<name>``).

``spine-det <name>`` (:mod:`spine_det.tools.__main__`) runs any of them; the scripts in the
repository's ``tools/`` folder are thin wrappers kept for Detectron2's habit. Nothing is imported
here: a tool's dependencies load only when that tool runs.
"""
