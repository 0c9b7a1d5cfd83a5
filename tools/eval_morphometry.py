#!/usr/bin/env python
"""Score morphometry against the phantom's ground_truth.json (heights, Genant grades, patient call) (code: spine_det.tools.eval_morphometry)."""
from spine_det.tools.eval_morphometry import invoke_main

if __name__ == "__main__":
    invoke_main()
