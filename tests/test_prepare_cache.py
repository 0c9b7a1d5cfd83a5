"""The cached manifest follows the data: new or rewritten files trigger a rescan."""
from spine_det.data.prepare import prepare_dataset

from test_layout import make_layout


def test_manifest_is_rescanned_when_the_data_changes(tmp_path):
    root, cache = tmp_path / "data", tmp_path / "cache"
    make_layout(root, n_normal=3, n_damaged=3)
    first = prepare_dataset(root, cache_dir=cache, convert=False).manifest
    again = prepare_dataset(root, cache_dir=cache, convert=False).manifest
    assert len(again.patients()) == len(first.patients()) == 6

    make_layout(root, n_normal=2, n_damaged=2, start=100)  # four more patients arrive
    grown = prepare_dataset(root, cache_dir=cache, convert=False).manifest
    assert len(grown.patients()) == 10
    assert {"Training/Normal/ID (100)", "Training/Damaged/ID (103)"} <= {p for p, _ in grown.patients()}
