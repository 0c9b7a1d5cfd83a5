#!/usr/bin/env python
"""Every registered model family and an Otsu baseline side by side on the same test images (code: spine_det.tools.benchmark)."""
from spine_det.tools.benchmark import invoke_main

if __name__ == "__main__":
    invoke_main()
