#!/usr/bin/env python
"""Train nnU-Net v2 on one task and score it with the package's metrics (code: spine_det.tools.train_nnunet)."""
from spine_det.tools.train_nnunet import invoke_main

if __name__ == "__main__":
    invoke_main()
