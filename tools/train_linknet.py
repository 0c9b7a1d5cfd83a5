#!/usr/bin/env python
"""Train and evaluate the LinkNet baseline on one task or one view (code: spine_det.tools.train_linknet)."""
from spine_det.tools.train_linknet import invoke_main

if __name__ == "__main__":
    invoke_main()
