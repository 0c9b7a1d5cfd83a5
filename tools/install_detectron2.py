#!/usr/bin/env python
"""Install Detectron2 into the running Python environment, verified (code: spine_det.tools.install_detectron2)."""
from spine_det.tools.install_detectron2 import invoke_main

if __name__ == "__main__":
    invoke_main()
