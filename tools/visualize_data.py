#!/usr/bin/env python
"""Draw the ground truth over the X-rays, to check the data before training (cf. Detectron2's tools/visualize_data.py) (code: spine_det.tools.visualize_data)."""
from spine_det.tools.visualize_data import invoke_main

if __name__ == "__main__":
    invoke_main()
