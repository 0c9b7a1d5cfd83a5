#!/usr/bin/env python
"""Train / evaluate Detectron2 Mask R-CNN on the spine X-ray dataset (code: spine_det.tools.train_net)."""
from spine_det.tools.train_net import invoke_main

if __name__ == "__main__":
    invoke_main()
