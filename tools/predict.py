#!/usr/bin/env python
"""Segment spine X-rays with a trained model of any registered family (code: spine_det.tools.predict)."""
from spine_det.tools.predict import invoke_main

if __name__ == "__main__":
    invoke_main()
