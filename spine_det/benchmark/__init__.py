"""Side-by-side benchmark: Mask R-CNN vs LinkNet vs an Otsu baseline on the same test images.

``tools/benchmark.py`` is the entry point. The pieces:

* :mod:`.runner`    train-or-reuse units (one subprocess of a tool each, logged, resumable)
* :mod:`.baselines` the Otsu threshold baseline, scored with the shared ScoreTable
* :mod:`.cost`      parameters, GFLOPs, inference speed, peak memory, training time
* :mod:`.reported`  the seed report's own figures (private dataset), never mixed with ours
* :mod:`.tables`    results.md / results.csv / results.json
* :mod:`.figures`   overlay grids and training curves
"""
