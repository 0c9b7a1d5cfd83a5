#!/usr/bin/env python
"""Per-vertebra morphometry and Genant grading for every patient of a dataset (code: spine_det.tools.measure)."""
from spine_det.tools.measure import invoke_main

if __name__ == "__main__":
    invoke_main()
