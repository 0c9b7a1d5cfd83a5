"""Dev: image statistics of lateral films, real vs phantom, to calibrate the LAT renderer (issue 33 item 2).

    python dev/lat_real_stats.py --set real=REAL_DIR_OR_ROOT --set phantom=PHANTOM_ROOT [--set after=ROOT2]
        [--n 40] [--out table.md]

Each ``--set NAME=PATH`` is a folder of films: every ``**/LAT/LAT.<ext>`` under it (with ``Lat_Vertebra.png``
beside it where there is one), or, if there is none, every image file directly in it (films without masks).
All films are read with the package's reader and resized to 512 px height (INTER_AREA), grey in 0..255.
Columns (mean over films, and the spread [p10, p90] across films):

* grey p5/p25/p50/p75/p95: percentiles of the whole film;
* dark fraction: pixels < 20 (air / collimation); bright fraction: pixels > 235 (saturated);
* noise: robust SD (1.4826 MAD) of the high-pass residual g - Gauss(g, sigma 1.5) over pixels >= 20;
* psd slope: slope of the radially averaged log power spectrum vs log frequency, 0.03..0.25 cycles/px,
  on the central 256 x 256 (Hann window); near -2 for natural images, steeper = smoother;
* contrast top/mid/bottom: (mean inside the vertebra mask - mean in a 4-px ring around it) / film SD for the
  top, middle and bottom third of the annotated column (only films with a mask);
* edge: mean gradient magnitude (Sobel on Gauss(g, 1)) on the mask outline / film SD (outline sharpness);
* body texture: SD of grey inside the bodies after removing a 7-px local mean, / film SD.
"""
import argparse
from pathlib import Path

import cv2
import numpy as np

from spine_det.data.io import IMAGE_SUFFIXES, read_image, read_mask

H = 512


def find_films(path: Path, n: int):
    dirs = sorted(d for d in path.glob("**/LAT") if d.is_dir())
    films = []
    for d in dirs:
        im = next((f for f in sorted(d.iterdir()) if f.stem.lower() == "lat" and f.suffix.lower() in IMAGE_SUFFIXES), None)
        if im is not None:
            m = d / "Lat_Vertebra.png"
            films.append((im, m if m.exists() else None))
    if not films:
        films = [(f, None) for f in sorted(path.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    return films[:n]


def load(im_p, m_p):
    g = read_image(im_p).astype(np.float64)
    s = H / g.shape[0]
    m = None
    if m_p is not None:
        m = read_mask(m_p, shape=g.shape).astype(np.uint8)
        m = cv2.resize(m, (max(int(round(g.shape[1] * s)), 1), H), interpolation=cv2.INTER_NEAREST) > 0
    g = cv2.resize(g, (max(int(round(g.shape[1] * s)), 1), H), interpolation=cv2.INTER_AREA)
    return g, m


def psd_slope(g):
    h, w = g.shape
    c = min(256, h, w)
    y0, x0 = (h - c) // 2, (w - c) // 2
    p = g[y0:y0 + c, x0:x0 + c]
    p = (p - p.mean()) * np.outer(np.hanning(c), np.hanning(c))
    P = np.abs(np.fft.fftshift(np.fft.fft2(p))) ** 2
    yy, xx = np.indices(P.shape)
    r = np.hypot(yy - c // 2, xx - c // 2) / c
    sel = (r >= 0.03) & (r <= 0.25)
    bins = np.linspace(0.03, 0.25, 23)
    idx = np.digitize(r[sel], bins)
    f, pw = [], []
    for k in range(1, len(bins)):
        v = P[sel][idx == k]
        if v.size:
            f.append(0.5 * (bins[k - 1] + bins[k]))
            pw.append(v.mean())
    return float(np.polyfit(np.log(f), np.log(np.maximum(pw, 1e-12)), 1)[0])


def film_stats(g, m):
    out = {f"p{q}": float(np.percentile(g, q)) for q in (5, 25, 50, 75, 95)}
    out["dark"] = float((g < 20).mean())
    out["bright"] = float((g > 235).mean())
    res = g - cv2.GaussianBlur(g, (0, 0), 1.5)
    body = g >= 20
    r = res[body] if body.sum() > 100 else res.ravel()
    out["noise"] = float(1.4826 * np.median(np.abs(r - np.median(r))))
    out["psd"] = psd_slope(g)
    if m is not None and m.sum() > 50:
        sd = g.std() + 1e-6
        rows = np.flatnonzero(m.any(1))
        r0, r1 = rows[0], rows[-1]
        ring = cv2.dilate(m.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~m
        third = (r1 - r0) // 3
        for name, (a, b) in zip(("c_top", "c_mid", "c_bot"), ((r0, r0 + third), (r0 + third, r0 + 2 * third), (r0 + 2 * third, r1 + 1))):
            band = np.zeros_like(m)
            band[a:b] = True
            if (m & band).sum() > 10 and (ring & band).sum() > 10:
                out[name] = float((g[m & band].mean() - g[ring & band].mean()) / sd)
        gs = cv2.GaussianBlur(g, (0, 0), 1.0)
        grad = np.hypot(cv2.Sobel(gs, cv2.CV_64F, 1, 0, ksize=3), cv2.Sobel(gs, cv2.CV_64F, 0, 1, ksize=3)) / 8
        edge = m & ~cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        out["edge"] = float(grad[edge].mean() / sd)
        inner = cv2.erode(m.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        if inner.sum() > 20:
            hp = g - cv2.blur(g, (7, 7))
            out["texture"] = float(hp[inner].std() / sd)
    return out


COLS = [("p5", "grey p5"), ("p25", "grey p25"), ("p50", "grey p50"), ("p75", "grey p75"), ("p95", "grey p95"),
        ("dark", "dark fraction (<20)"), ("bright", "bright fraction (>235)"), ("noise", "noise SD (high-pass, grey)"),
        ("psd", "PSD slope"), ("c_top", "body contrast top third"), ("c_mid", "body contrast middle third"),
        ("c_bot", "body contrast bottom third"), ("edge", "outline gradient / SD"), ("texture", "body texture / SD")]


def summarise(rows):
    out = {}
    for k, _ in COLS:
        v = np.array([r[k] for r in rows if k in r])
        out[k] = (v.mean(), np.percentile(v, 10), np.percentile(v, 90), len(v)) if len(v) else None
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", action="append", required=True, help="NAME=PATH (repeatable; several PATHs joined by ,)")
    ap.add_argument("--n", type=int, default=40, help="films per path at most")
    ap.add_argument("--out", type=Path, help="also write the table (markdown) here")
    a = ap.parse_args()
    sets = {}
    for s in a.set:
        name, paths = s.split("=", 1)
        films = [f for p in paths.split(",") for f in find_films(Path(p), a.n)]
        sets[name] = [film_stats(*load(*f)) for f in films]
        print(f"{name}: {len(films)} films, {sum('c_mid' in r for r in sets[name])} with masks")
    summ = {k: summarise(v) for k, v in sets.items()}
    lines = ["| statistic | " + " | ".join(f"{k} (n={len(v)})" for k, v in sets.items()) + " |",
             "|---|" + "---|" * len(sets)]
    for k, label in COLS:
        cells = []
        for name in sets:
            s = summ[name][k]
            cells.append("-" if s is None else f"{s[0]:.3g} [{s[1]:.3g}, {s[2]:.3g}]" + ("" if s[3] == len(sets[name]) else f" (n={s[3]})"))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    if a.out:
        a.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
