#!/usr/bin/env python
"""Score predicted instances object by object: how many vertebrae came out, merged or split (code: spine_det.tools.eval_instances)."""
from spine_det.tools.eval_instances import invoke_main

if __name__ == "__main__":
    invoke_main()
