"""Side-by-side benchmark: every registered model family (spine_det.modeling.registry: LinkNet,
Mask R-CNN, ...) and an Otsu baseline on the same test images.

``spine_det.tools.benchmark`` (``spine-det benchmark``) is the entry point. The pieces:

* :mod:`.plan`      the units' command lines, one per family, task and seed, from the registered families
* :mod:`.pipeline`  the whole run, looping over the registered families
* :mod:`.runner`    train-or-reuse units (one subprocess of a tool each, logged, resumable)
* :mod:`.records`   one result record per family, task and seed (on disk), and the tables' rows built from them
* :mod:`.curves`    training curves from the tools' logs, by log format
* :mod:`.baselines` the Otsu threshold baseline, scored with the shared ScoreTable
* :mod:`.cost`      parameters, GFLOPs, inference speed, peak memory, training time
* :mod:`.reported`  the seed report's own figures (private dataset), never mixed with ours
* :mod:`.tables`    results.md / results.csv / results.json, each table's columns named once
* :mod:`.figures`   overlay grids and training curves
"""
