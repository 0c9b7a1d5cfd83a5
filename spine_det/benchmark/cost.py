"""What each model costs: training time, s/iter, inference images/s, parameters, GFLOPs, peak memory.

Training time and training peak RSS come from the runner (wall clock and
``wait4`` of the tool's process); s/iter and the curves from the tools' own
logs, read by each model family's readers (:mod:`spine_det.modeling.registry`). Inference figures are measured here, in a fresh process per unit
(``python -m spine_det.benchmark.cost``), so that peak memory belongs to that
model alone: RSS via ``resource.getrusage`` on CPU,
``torch.cuda.max_memory_allocated`` on CUDA. GFLOPs are fvcore's count (one
fused multiply-add = one flop) for one test image at the model's input size.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import resource
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from spine_det.benchmark.curves import read_jsonl  # noqa: F401  (its old home)
from spine_det.data.io import read_image
from spine_det.data.layout import Manifest
from spine_det.engine.predictor import build_predictor
from spine_det.modeling.registry import family_keys, get_family
from spine_det.utils.cli import non_negative_int, positive_int
from spine_det.utils.fileio import atomic_path, atomic_write_json
from spine_det.utils.logs import setup_logging
from spine_det.utils.provenance import provenance

logger = logging.getLogger(__name__)

COST_FILE = "benchmark_cost.json"
PRED_DIR = "benchmark_predictions"


# --------------------------------------------------------------------------- pieces


def count_parameters(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (Linux reports KiB, macOS bytes)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024.0 * 1024.0) if sys.platform == "darwin" else r / 1024.0


def peak_memory(device: str) -> Dict[str, Any]:
    """Peak memory of this process: CUDA allocator peak on CUDA, else RSS."""
    import torch  # lazy: start-up (torch/Detectron2; this module stays light)

    if str(device).startswith("cuda") and torch.cuda.is_available():
        return {"peak_memory_mb": torch.cuda.max_memory_allocated() / 2**20, "memory_kind": "cuda max_memory_allocated"}
    return {"peak_memory_mb": peak_rss_mb(), "memory_kind": "process peak RSS"}


def gflops(model: Any, inputs: Any) -> Optional[float]:
    """fvcore FLOP count of one forward pass, in GFLOPs (None if the model cannot be traced)."""
    import torch  # lazy: start-up (torch/Detectron2; this module stays light)
    from fvcore.nn import FlopCountAnalysis

    try:
        fca = FlopCountAnalysis(model, inputs)
        fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        with torch.no_grad():
            return float(fca.total()) / 1e9
    except Exception as e:  # noqa: BLE001  (a cost column must not sink the benchmark)
        logger.warning("FLOP count failed (%s: %s)", type(e).__name__, str(e).splitlines()[0] if str(e) else "")
        return None


def model_flops(spec: Any, predictor: Any, image: np.ndarray) -> Tuple[Optional[float], Optional[List[int]]]:
    """(GFLOPs, [H, W] the network sees) of ``predictor``'s network on ``image`` as the predictor feeds it:
    the family's own counter when its benchmark adapter has one, else the predictor's ``flop_count_inputs``."""
    own = spec.benchmark.network_flops(predictor, image)
    if own is not None:
        return own[0], (None if own[1] is None else [int(v) for v in own[1]])
    found = predictor.flop_count_inputs(image)
    if found is None:
        return None, None
    module, inputs = found
    return gflops(module, inputs), [int(v) for v in inputs[0].shape[-2:]]


def time_inference(predict: Any, images: Sequence[np.ndarray], warmup: int = 1) -> Dict[str, Any]:
    """Images per second of ``predict`` on ``images`` (after ``warmup`` untimed calls); returns the outputs too."""
    import torch  # lazy: start-up (torch/Detectron2; this module stays light)

    for img in images[:warmup]:
        predict(img)
    outs = []
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for img in images:
        outs.append(predict(img))
    sync()
    dt = time.perf_counter() - t0
    return {"images_per_s": len(images) / dt if dt > 0 else None, "inference_images": len(images), "outputs": outs}



# --------------------------------------------------------------------------- the subprocess


def measure(name: str, checkpoint: str, task: str, samples: Sequence[Any], device: str = "cpu",
            pred_dir: Optional[Path] = None, n_images: int = 8, keep_predictions: int = 4) -> Dict[str, Any]:
    """Build the registered predictor ``name``, count params/GFLOPs, time it on test images, save a few masks."""
    t0 = time.perf_counter()
    predictor = build_predictor(name, checkpoint, device=device)
    load_s = time.perf_counter() - t0
    model = predictor.model
    chosen = list(samples)[:n_images]
    images = [read_image(s.image) for s in chosen]
    result: Dict[str, Any] = {"model": name, "task": task, "checkpoint": str(checkpoint), "device": device,
                              "parameters": count_parameters(model), "load_s": round(load_s, 3),
                              "requested": {"images": n_images, "keep": keep_predictions}}
    if images:
        timing = time_inference(predictor, images)
        outs = timing.pop("outputs")
        result.update(timing)
        # and the size the network sees it at
        result["gflops"], result["gflops_input"] = model_flops(get_family(name), predictor, images[0])
        if pred_dir is not None:
            pred_dir.mkdir(parents=True, exist_ok=True)
            # the figures may want more images than were timed: predict those untimed
            extra = list(samples)[len(chosen):keep_predictions]
            outs = list(outs) + [predictor(read_image(s.image)) for s in extra]
            for s, out in list(zip(chosen + extra, outs))[:keep_predictions]:
                with atomic_path(pred_dir / f"{_safe(s.key)}.png") as tmp:
                    cv2.imwrite(str(tmp), out[task].mask.astype(np.uint8) * 255)
    result.update(peak_memory(device))
    return result


def _safe(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("_")


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description="Measure one trained model's inference cost (run by the benchmark).")
    p.add_argument("--model", required=True, choices=family_keys(), help="a registered model family")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--manifest", required=True, help="manifest.json of the prepared data")
    p.add_argument("--split", default="test")
    p.add_argument("--device", default="cpu")
    p.add_argument("--images", type=positive_int, default=8, help="test images timed")
    p.add_argument("--keep", type=non_negative_int, default=4, help="predicted masks saved for the figures")
    p.add_argument("--out", required=True, help="folder for benchmark_cost.json and the saved masks")
    args = p.parse_args(argv)
    setup_logging()  # the one logging setup of every tool (spine_det.utils.logs)

    manifest = Manifest.load(args.manifest)
    samples = manifest.select(split=args.split, task=args.task)
    out = Path(args.out)
    res = measure(args.model, args.checkpoint, args.task, samples, args.device, out / PRED_DIR, args.images, args.keep)
    atomic_write_json(out / COST_FILE, {**res, **provenance()})
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
