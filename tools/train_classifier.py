#!/usr/bin/env python
"""Train the Normal/Damaged classifiers (one per view) and report test metrics (code: spine_det.tools.train_classifier)."""
from spine_det.tools.train_classifier import invoke_main

if __name__ == "__main__":
    invoke_main()
