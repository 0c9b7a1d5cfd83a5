"""Benchmark pictures: the training-curve figure draws one line per seed when a model ran several, and marks
where the learning rate drops."""
from __future__ import annotations

from spine_det.benchmark import figures


def _curves(x_label, dice, loss=((0, 2.0), (10, 1.0))):
    return {"x_label": x_label, "loss": list(loss), "val_dice": list(dice)}


def test_training_curves_draw_each_seed(tmp_path, monkeypatch):
    saved = {}

    def keep(fig, path):
        saved["fig"] = fig
        return path

    monkeypatch.setattr(figures, "_save", keep)
    first = {**_curves("iteration", [(100, 0.2), (200, 0.5)]), "lr_steps": [150]}
    seeds = {0: first, 1: {**_curves("iteration", [(100, 0.1), (200, 0.6)]), "lr_steps": [150]},
             2: _curves("iteration", [(100, 0.3)])}
    one = _curves("epoch", [(1, 0.4), (2, 0.7)])
    out = figures.training_curves("lat_anterior_line", {"maskrcnn": first, "linknet": one}, tmp_path / "c.png",
                                  {"maskrcnn": "Mask R-CNN", "linknet": "LinkNet"},
                                  seed_curves={"maskrcnn": seeds, "linknet": {0: one}})
    assert out == tmp_path / "c.png"
    axes = saved["fig"].axes
    mr_dice, ln_dice = axes[1], axes[3]  # rows: models in order; columns: loss, validation Dice
    runs = [line for line in mr_dice.get_lines() if line.get_label().startswith("seed")]
    assert [line.get_label() for line in runs] == ["seed 0", "seed 1", "seed 2"]
    assert [list(line.get_ydata()) for line in runs] == [[0.2, 0.5], [0.1, 0.6], [0.3]]
    drops = [line for line in mr_dice.get_lines() if line not in runs]  # the LR drop, once for all seeds
    assert len(drops) == 1 and list(drops[0].get_xdata()) == [150, 150] and drops[0].get_label() == "LR drop"
    assert len(axes[0].get_lines()) == 4 and len(axes[2].get_lines()) == 1  # the loss panel marks it too
    assert mr_dice.get_legend() is not None and mr_dice.get_xlabel() == "iteration"
    assert len(ln_dice.get_lines()) == 1 and ln_dice.get_legend() is None  # one seed: no legend
    assert "one line per seed" in saved["fig"]._suptitle.get_text()


def test_training_curves_without_seeds_and_without_data(tmp_path, monkeypatch):
    saved = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: saved.setdefault("fig", fig) and path)
    assert figures.training_curves("t", {"m": {"loss": [], "val_dice": []}}, tmp_path / "x.png") is None
    figures.training_curves("t", {"m": _curves("epoch", [(1, 0.5)])}, tmp_path / "x.png")
    assert [len(a.get_lines()) for a in saved["fig"].axes] == [1, 1]
    assert "per seed" not in saved["fig"]._suptitle.get_text()
