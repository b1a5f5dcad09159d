"""Label-efficiency metrics over a run's rounds (shared by `simulate` and the benchmarks)."""

from core.effort import COSTS

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


def effort_summary(rounds: list[dict], full_label_accuracy: float, pool_size: int) -> dict:
    """Human seconds (and actions) until the served model reaches 90 % of the full-label
    accuracy, and until 95 % of the whole pool is labeled right (human or pseudo-label);
    None when the run did not get there."""

    def first(reached) -> dict | None:
        return next((r for r in rounds if reached(r)), None)

    model = first(
        lambda r: r["test_accuracy"] is not None and r["test_accuracy"] >= 0.9 * full_label_accuracy
    )
    dataset = first(lambda r: r["dataset_accuracy"] >= 0.95)
    last = rounds[-1] if rounds else None

    def per_image(row: dict | None) -> float | None:
        return round(row["actions_total"] / pool_size, 4) if row and pool_size else None

    def at_tile_1s(row: dict | None) -> float | None:
        return row.get("human_seconds_total_tile_1s") if row else None

    return {
        "seconds_to_90pct_model": model["human_seconds_total"] if model else None,
        "seconds_to_95pct_dataset": dataset["human_seconds_total"] if dataset else None,
        "actions_per_image_to_90pct_model": per_image(model),
        "actions_per_image_to_95pct_dataset": per_image(dataset),
        "labels_to_90pct_model": model["labels"] if model else None,
        "labels_to_95pct_dataset": dataset["labels"] if dataset else None,
        # The same sessions priced at 1.0 s per verification tile instead of 0.5 s.
        "seconds_to_90pct_model_tile_1s": at_tile_1s(model),
        "seconds_to_95pct_dataset_tile_1s": at_tile_1s(dataset),
        "final_dataset_accuracy": last["dataset_accuracy"] if last else None,
        "final_dataset_coverage": last["dataset_coverage"] if last else None,
        "human_seconds_total": last["human_seconds_total"] if last else 0.0,
        "cost_model": COSTS.source,
    }
