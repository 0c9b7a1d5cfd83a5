#!/usr/bin/env python
"""Convert the spine dataset's binary masks to COCO JSON (one file per task and split, and per view and split) (code: spine_det.tools.convert_to_coco)."""
from spine_det.tools.convert_to_coco import invoke_main

if __name__ == "__main__":
    invoke_main()
