#!/usr/bin/env python
"""Cobb angles (PT, MT, TL) per AP image, scored like the AASCE 2019 challenge (code: spine_det.tools.measure_cobb)."""
from spine_det.tools.measure_cobb import invoke_main

if __name__ == "__main__":
    invoke_main()
