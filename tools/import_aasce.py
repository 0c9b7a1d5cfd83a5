#!/usr/bin/env python
"""Import the AASCE 2019 / SpineWeb-16 spine radiographs ("boostnet_labeldata") into the package's layout (code: spine_det.tools.import_aasce)."""
from spine_det.tools.import_aasce import invoke_main

if __name__ == "__main__":
    invoke_main()
