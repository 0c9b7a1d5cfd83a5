"""Synthetic spine radiographs (AP and LAT, full-spine to lumbar fields): the embedded default data of spine_det.

The real dataset is private; this generator writes patients in exactly its
layout, so every model, test and benchmark runs without it::

    <out>/{Training,Test}/{Normal,Damaged}/ID (n)/AP/AP.jpg
    <out>/.../ID (n)/AP/Ap_Vertebra.png Ap_Pedicle.png Ap_Spinous_Process.png
    <out>/.../ID (n)/LAT/LAT.jpg
    <out>/.../ID (n)/LAT/Lat_Vertebra.png Lat_Disk_Height.png Lat_Spinous_Process.png
                         Lat_Anterior_Vertebral_Line.png Lat_Posterior_Vertebral_Line.png
    <out>/.../ID (n)/ground_truth.json
    <out>/phantom_manifest.json            (marks the folder as phantom output)

Each patient is one 3-D spine C7..L5 + sacrum/pelvis with lordosis/kyphosis,
a scoliosis (none, single or double curve, Cobb 0-90 deg, apical vertebrae
axially rotated toward the convexity), size variation, a rib cage, clavicles,
lungs, heart and diaphragm (``anatomy``). The LAT view is a radiograph formed from
attenuation integrated along left-right rays through the same 3-D solids seen from
the side (``lat_render``: bodies with a cortical rim around a lighter trabecular
core, pedicles, facets and spinous processes, ribs, lungs, heart, bowel gas,
iliac crests and femoral heads) and the same image chain as AP (``xray``), displayed
darker as lateral films are, over a field drawn at random: full spine (T1 near the
top, with ribs, lungs, heart, trachea, sternum, scapulae and raised arms), thoracolumbar
(from T3-T8), or the lumbar series' field (T9 cut by the top edge); 30 % of the
LAT films are functional views of that series, the lumbar spine bent forward
(flexion, 4-9 deg per disc from L5/S1 to T12/L1) or backward (extension, 2-5 deg)
while the AP film shows the same patient neutral. The AP view is a radiograph formed from attenuation
integrated along rays through 3-D shapes (``ap_render``) and an X-ray system's
image chain - heel effect, scatter, blur, quantum noise, log transform,
multi-frequency processing, random LUT, collimation, burnt-in marks
(``xray``) - over a field drawn at random: full spine (T1 near the top, aspect
0.30-0.46, like full-spine scoliosis films), thoracolumbar, or lumbar. Each view
annotates every level of T1-L5 wholly inside its field (always T10-L5); AP draws
a four-cornered body. Masks are drawn the way the human annotators drew them
(``masks``) and written by ``writer``. X-rays are RGB JPEGs with R = G = B and
height ``size``; widths follow each view's field. Masks are 8-bit PNGs of the
same size, written binary (0/255: the drawing's anti-aliased edges, any value > 0, are foreground),
so that the package's one mask policy (``spine_det.data.io.binarize``) reads them as drawn and warns
about none. Everything
derives from ``(seed, index)``: same seed -> byte-identical files, whatever
the worker count.

Damaged patients carry >= 1 fracture of Genant grade >= 1 (wedge, biconcave,
crush or burst; height loss 20-25% grade 1, 25-40% grade 2, 40-58% grade 3)
and, in ~30%, an anterolisthesis of L3/L4/L5. Burst fractures retropulse the
posterior wall (the posterior line bends) and widen the interpedicular
distance in AP. Normal patients: every level loses < 15% of its height.

``ground_truth.json`` (pixels are (x=col, y=row), floats
rounded to 0.01)::

    {
      "schema_version": 3,
      "patient_id": "ID (12)",  "index": 11,          # index is 0-based, id is index + 1
      "label": "Normal" | "Damaged",
      "split": "Training" | "Test" | null,           # null when made in memory without a split
      "seed": 0, "size": 1024,
      "views": {"ap":  {"width": 690, "height": 1024, "px_per_mm": 2.71},
                "lat": {"width": 668, "height": 1024, "px_per_mm": 2.69}},
      "sacral_slope_deg": 38.2,
      "levels": [                                    # T10 .. L5, top to bottom
        {"name": "T10",
         "expected_height_px": 57.1,                 # un-fractured body height (LAT px)
         "anterior_height_px": 53.0, "middle_height_px": 55.2, "posterior_height_px": 56.4,   # LAT px
         "height_loss_ratio": 0.072,                 # 1 - min(ant, mid, post) / expected
         "fracture_type": "none" | "wedge" | "biconcave" | "crush" | "burst",
         "genant_grade": 0 | 1 | 2 | 3,
         "lat_corners": {"anterior_superior": [x, y], "anterior_inferior": [x, y],
                         "posterior_superior": [x, y], "posterior_inferior": [x, y]},   # LAT px
         "ap_corners": {"left_superior": [x, y], "right_superior": [x, y],
                        "left_inferior": [x, y], "right_inferior": [x, y]},             # AP px, image left/right
         "ap_body_width_px": 95.3,                   # AP px
         "interpedicular_distance_px": 60.2,         # AP px, between the pedicles' medial borders
         "listhesis_offset_px": 0.0,                 # LAT px, anterior slip over the level below
         "retropulsion_px": 0.0},                    # LAT px, posterior bulge of the posterior wall
        ...
      ],
      "fractured_levels": ["L1"], "max_genant_grade": 2, "listhesis_levels": [],
      "ap_field": "full" | "thoracolumbar" | "lumbar",
      "ap_levels": [                                 # every level annotated in AP (T1..L5 where wholly visible)
        {"name": "T1", "coronal_tilt_deg": 4.1, "axial_rotation_deg": -2.3,
         "ap_corners": {"left_superior": [x, y], ...}},                                # AP px
        ...
      ],
      "lat_field": "full" | "thoracolumbar" | "lumbar",
      "lat_posture": "neutral" | "flexion" | "extension",  "lat_bend_deg": 38.5,   # T12/L1..L5/S1, + forward
      "lat_levels": [                                # every level annotated in LAT (T1..L5 where wholly visible)
        {"name": "T1", "sagittal_tilt_deg": 15.2,
         "lat_corners": {"anterior_superior": [x, y], ...}},                           # LAT px
        ...
      ],
      "scoliosis": [{"upper": "T5", "lower": "T12", "cobb_deg": 42.0}, ...]        # end vertebrae, Cobb angle
    }

In LAT the patient faces image left (anterior = small x). In AP the patient's
right is on the image left (an "R" marker is burned in there).
"""
from spine_det.data.phantom.anatomy import LEVELS, genant_grade
from spine_det.data.phantom.patient import (
    FILM_KINDS, SCHEMA_VERSION, PatientSample, film_kind, generate_patient, patient_id,
)
from spine_det.data.phantom.writer import MARKER, assign_patients, generate_dataset

__all__ = [
    "FILM_KINDS",
    "LEVELS",
    "MARKER",
    "SCHEMA_VERSION",
    "PatientSample",
    "assign_patients",
    "film_kind",
    "generate_dataset",
    "generate_patient",
    "genant_grade",
    "patient_id",
]
