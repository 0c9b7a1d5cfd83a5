"""Image formation of a radiograph from its attenuation line integrals, as an X-ray system does it.

Input: ``A`` (H, W) float, the line integral of the linear attenuation
coefficient along each ray (in e-folds: the primary beam reaching the pixel is
``exp(-A)``). Steps, each with per-image random settings (domain randomisation
built into the data):

1. exposure: heel effect (anode side dimmer) along the long axis;
2. scatter: a low-pass copy of the primary added with a scatter-to-primary ratio
   (what reaches the detector despite the grid), which flattens contrast where
   the body is thick;
3. detector: focal-spot / screen blur, then quantum noise (Poisson, as a
   Gaussian of variance I / N0) - noisy where few photons arrive;
4. display processing of CR/DR systems: log transform, dynamic-range compression
   plus multi-frequency detail enhancement (unsharp masking), a percentile
   window and a random LUT (gamma and sigmoid);
5. burnt-in annotations: collimation borders, side marker, text, stitching seam.
"""
from __future__ import annotations

import math
from typing import Optional

import cv2
import numpy as np


def _blur_low(x: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian low-pass with a large sigma, computed on a downscaled copy (fast)."""
    h, w = x.shape
    f = max(1, int(sigma_px / 4))
    if f == 1:
        return cv2.GaussianBlur(x, (0, 0), sigma_px)
    small = cv2.resize(x, (max(w // f, 2), max(h // f, 2)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma_px / f, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def expose(A: np.ndarray, scale: float, rng: np.random.Generator, thick: Optional[np.ndarray] = None,
           scatter_mask: Optional[np.ndarray] = None) -> np.ndarray:
    """Attenuation line integrals (H, W) -> processed display image, float in [0, 1] (bone bright).

    ``thick``: the soft-tissue integral; scatter grows with it (thick abdomen: more scatter, less contrast).
    ``scatter_mask`` (0..1): where the body scatters; scatter is then the local mean primary inside it, so
    the open beam beside a body (behind the back of a LAT film) does not fog the spine. Default: everywhere."""
    h, w = A.shape
    rows = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
    heel = 1.0 + np.float32(rng.uniform(0.05, 0.3) * rng.choice([-1, 1])) * rows
    ip = heel * np.exp(-A.astype(np.float32))
    spr = np.float32(rng.uniform(0.2, 1.2))
    if thick is not None:
        t = _blur_low(thick.astype(np.float32), 20 * scale)
        spr = spr * np.clip(t / max(float(np.median(t)), 1e-3), 0.3, 3.0) ** np.float32(rng.uniform(1.0, 2.5))
    sig = rng.uniform(20, 45) * scale
    if scatter_mask is None:
        i = ip + spr * _blur_low(ip, sig)
    else:
        m = scatter_mask.astype(np.float32)
        i = ip + spr * m * _blur_low(ip * m, sig) / np.maximum(_blur_low(m, sig), np.float32(1e-3))
    i = cv2.GaussianBlur(i, (0, 0), rng.uniform(0.2, 0.55) * scale + 0.35)
    # photons per pixel in the open beam: N0 per mm^2 times the pixel's area
    n0 = 10 ** rng.uniform(4.8, 6.0) / max(scale * scale, 1e-6)
    noise = rng.standard_normal((h, w), dtype=np.float32)
    noise = cv2.GaussianBlur(noise, (3, 3), 0.5) * np.float32(1.6)  # detector correlation, variance restored
    i = i + np.sqrt(np.clip(i, 0, None) / np.float32(n0)) * noise
    d = -np.log(np.clip(i, 1e-5, None))
    # dynamic-range compression + detail enhancement (multi-frequency processing)
    low = _blur_low(d, rng.uniform(20, 60) * scale)
    d = low * np.float32(rng.uniform(0.2, 0.65)) + (d - low) * np.float32(rng.uniform(0.9, 1.5))
    mid = cv2.GaussianBlur(d, (0, 0), rng.uniform(1.5, 5.0) * scale + 0.5)
    d = d + np.float32(rng.uniform(0.0, 0.8)) * (d - mid)
    sub = d[::3, ::3]
    lo, hi = np.percentile(sub, [rng.uniform(0.1, 2.0), rng.uniform(98.5, 99.95)])
    hi = lo + (hi - lo) * rng.uniform(1.0, 1.25)  # some systems leave headroom above the densest bone
    x = np.clip((d - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    return x


def to_uint8(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random display LUT (gamma, then a sigmoid of random strength) applied through a 4096-entry table."""
    t = np.linspace(0.0, 1.0, 4096)
    t = np.power(t, rng.uniform(0.9, 1.9))
    k = rng.uniform(0.0, 3.0)
    if k > 0.3:
        c = rng.uniform(0.4, 0.6)
        t = (np.tanh(k * (t - c)) - math.tanh(-k * c)) / (math.tanh(k * (1 - c)) - math.tanh(-k * c))
    lut = (np.clip(t, 0, 1) * 255.0 + 0.5).astype(np.uint8)
    return lut[(x * 4095.0 + 0.5).astype(np.int32)]


def burn_in(img: np.ndarray, rng: np.random.Generator, side_marker: str, lines) -> None:
    """Collimation borders, a stitching seam, a lead side marker and text, in place on a uint8 image."""
    h, w = img.shape
    fs = min(h / 1024.0, w / 420.0)
    if rng.random() < 0.3:  # collimator leaves: unexposed margins (white, or black after some processing)
        val = 255 if rng.random() < 0.5 else 0
        for side in ("l", "r", "t"):
            if rng.random() < 0.5:
                k = int(rng.uniform(0.01, 0.06) * (h if side == "t" else w))
                if side == "l":
                    img[:, :k] = val
                elif side == "r":
                    img[:, w - k:] = val
                else:
                    img[:k] = val
    if rng.random() < 0.25:  # stitched long film: a seam with a small step in brightness
        y = int(rng.uniform(0.3, 0.7) * h)
        step = int(rng.integers(-18, 19))
        img[y:] = np.clip(img[y:].astype(np.int16) + step, 0, 255).astype(np.uint8)
        cv2.line(img, (0, y), (w - 1, y), int(rng.integers(150, 256)), max(int(round(2 * fs)), 1))
    for _ in range(int(rng.integers(0, 4))):  # lead markers, arrows, clips, electrodes: bright, not anatomy
        kind = int(rng.integers(0, 4))
        cx, cy = int(rng.uniform(0.05, 0.95) * w), int(rng.uniform(0.03, 0.97) * h)
        r = max(int(rng.uniform(8, 30) * fs), 2)
        val = int(rng.integers(200, 256))
        if kind == 0:
            cv2.putText(img, str(rng.choice(["L", "R"])), (cx - r, cy + r), cv2.FONT_HERSHEY_DUPLEX, r / 12.0,
                        val, max(r // 4, 2), cv2.LINE_AA)
        elif kind == 1:
            cv2.rectangle(img, (cx - r, cy - 2 * r), (cx + r, cy + 2 * r), val, max(r // 5, 1), cv2.LINE_AA)
        elif kind == 2:
            cv2.circle(img, (cx, cy), r // 2, val, max(r // 6, 1), cv2.LINE_AA)
            cv2.circle(img, (cx, cy), max(r // 8, 1), val, -1, cv2.LINE_AA)
        else:
            cv2.arrowedLine(img, (cx, cy + r), (cx, cy - r), val, max(r // 4, 1), cv2.LINE_AA, 0, 0.5)
    th = max(int(round(3 * fs)), 1)
    x = int(rng.uniform(0.05, 0.6) * w)
    y = int(rng.uniform(0.05, 0.35) * h)
    cv2.putText(img, side_marker, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 1.6 * fs, int(rng.integers(200, 256)), th, cv2.LINE_AA)
    if rng.random() < 0.6:
        tx = int(rng.uniform(0.02, 0.4) * w)
        ty = int(rng.uniform(0.02, 0.05) * h) if rng.random() < 0.5 else int(rng.uniform(0.85, 0.93) * h)
        for k, t in enumerate(lines):
            cv2.putText(img, t, (tx, ty + int(k * 24 * fs)), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * fs,
                        int(rng.integers(180, 256)), max(int(round(1.5 * fs)), 1), cv2.LINE_AA)
