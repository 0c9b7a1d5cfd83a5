"""Per-vertebra morphometry and Genant fracture grading from LAT / AP vertebra instances.

vertebrae (order + orient bodies, flag merged / missing / split) -> heights (LAT
heights, ratios, discs, listhesis) and ap (widths, interpedicular distance) ->
grading (expected height from neighbours, Genant grade, patient call) -> report
(JSON + overlay). ``pipeline.measure_patient`` runs it all for one patient.
"""
from spine_det.morphometry.grading import GradingConfig, genant_grade
from spine_det.morphometry.pipeline import MeasureConfig, load_measure_config, measure_ap, measure_lat, measure_patient

__all__ = ["GradingConfig", "MeasureConfig", "genant_grade", "load_measure_config", "measure_ap", "measure_lat",
           "measure_patient"]
