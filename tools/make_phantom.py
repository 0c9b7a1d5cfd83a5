#!/usr/bin/env python
"""Write a synthetic spine X-ray dataset (AP + LAT radiographs, 8 task masks, ground truth) (code: spine_det.tools.make_phantom)."""
from spine_det.tools.make_phantom import invoke_main

if __name__ == "__main__":
    invoke_main()
