#!/usr/bin/env python
"""Train and evaluate the vertebra-landmark family on a vertebra task (code: spine_det.tools.train_landmark)."""
from spine_det.tools.train_landmark import invoke_main

if __name__ == "__main__":
    invoke_main()
