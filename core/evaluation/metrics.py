"""Label-efficiency metrics over a run's rounds (shared by `simulate` and the benchmarks)."""

TARGETS = (0.8, 0.9, 0.95)  # fractions of the full-label accuracy a run is timed to


def area_under_curve(rounds: list[dict], chance: float) -> float:
    """Mean test accuracy over the labels spent: the trapezoid area under accuracy-vs-labels
    from 0 labels (chance) to the last round, divided by that number of labels. Rounds
    without a model count as chance."""
    xs = [0] + [r["labels"] for r in rounds]
    ys = [chance] + [
        r["test_accuracy"] if r["test_accuracy"] is not None else chance for r in rounds
    ]
    if xs[-1] == 0:
        return chance
    area = sum((xs[i] - xs[i - 1]) * (ys[i] + ys[i - 1]) / 2 for i in range(1, len(xs)))
    return area / xs[-1]
