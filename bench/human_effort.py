"""Benchmark: annotator seconds to a good model and to a correctly labeled dataset.

On one pool, in one process (one `Simulation`: the app's own lease / page / submit / training
services with an oracle that answers from the labels), two sessions run from scratch:

- **policy**: the app's default labeling mode, `auto` (core/services/labeling.py): single
  cards (margin strategy, pre-selection where it is right often enough) until the model's
  predictions settle, then alternating with verification pages whenever a page costs fewer
  expected seconds per right label; cards are audits (random open images, no suggestion)
  while the model is learning, then the project's default `audit_share` of them (20 %), of
  which the default `audit_top_share` (none; `--audit-top-share`) are drawn among the most
  confident quarter of the open images; the
  dataset counts the model's pseudo-labels under their certified cuts (what an export with
  audited pseudo-labels gives);
- **baseline**: random order, one image at a time, no pre-selection, human labels only;
  once its model reaches (a) it is not retrained (nothing it labels depends on the model
  then; retraining on every 20 labels of a 10,000-image pool took over an hour).

Each is priced by the cost model in core/effort.py (KLM, plus 0.5 s per verification tile
looked at; the seconds at 1.0 s per tile are reported too). Both stop once the pool's dataset
accuracy reaches 95 % and the served model 90 % of the full-label accuracy (or the pool is
used up). Prints one JSON with, for each session, the seconds and actions per image to (a)
90 % of full-label model accuracy and (b) 95 % dataset accuracy, and the ratios; writes it,
with every round, to `--out/human-effort-<dataset>.json` and draws
`--out/human-effort-<dataset>.svg` (dataset accuracy and model accuracy against seconds).

    .venv/bin/python bench/human_effort.py --data ../shared/data/cifar10-jpg.zip
    .venv/bin/python bench/human_effort.py --data fashion-mnist   # the Debian package
"""

import argparse
import json
import platform
import sys
import tempfile
import time
from html import escape
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.label_efficiency import django_setup, fashion_mnist_tree  # noqa: E402

GOALS = (
    "seconds_to_90pct_model",
    "seconds_to_95pct_dataset",
    "actions_per_image_to_90pct_model",
    "actions_per_image_to_95pct_dataset",
    "labels_to_90pct_model",
    "labels_to_95pct_dataset",
    "seconds_to_90pct_model_tile_1s",
    "seconds_to_95pct_dataset_tile_1s",
)


def sessions(pool_size: int, batch: int, seed: int, audit_top_share: float | None = None) -> dict:
    from core.evaluation.simulation import RunConfig
    from core.models import Project

    common = {"budget": pool_size, "batch": batch, "seed": seed, "stop_at_dataset_accuracy": 0.95}
    audit_share = Project._meta.get_field("audit_share").default  # the product's defaults
    if audit_top_share is None:
        audit_top_share = Project._meta.get_field("audit_top_share").default
    return {
        "policy": RunConfig(
            strategy="margin",
            mode="auto",
            audit_share=audit_share,
            audit_top_share=audit_top_share,
            **common,
        ),
        # Its model only decides (a): once reached, no more training runs (random order and
        # human labels do not depend on the model; tests/core/test_simulation.py checks the
        # seconds to both goals against a run that keeps training).
        "baseline": RunConfig(
            strategy="random",
            mode="cards",
            preselect=False,
            pseudo_labels=False,
            train_after_model_goal=False,
            **common,
        ),
    }


def session_summary(result: dict) -> dict:
    summary = result["summary"]
    rounds = result["rounds"]
    last = rounds[-1] if rounds else {}
    return {
        **{goal: summary.get(goal) for goal in GOALS},
        "full_label_accuracy": summary.get("full_label_accuracy"),
        "final_test_accuracy": summary.get("final_accuracy"),
        "final_dataset_accuracy": summary.get("final_dataset_accuracy"),
        "final_dataset_coverage": summary.get("final_dataset_coverage"),
        "labels": last.get("labels"),
        "cards": sum(r["cards"] for r in rounds),
        "pages": sum(r["pages"] for r in rounds),
        "verified": sum(r["verified"] for r in rounds),
        "tiles_marked": sum(r["tiles_marked"] for r in rounds),
        "audit_cards": sum(r["audit_cards"] for r in rounds),
        "audit_top_cards": sum(r.get("audit_top_cards", 0) for r in rounds),
        "preselected_cards": summary.get("preselected_cards"),
        "preselected_precision": summary.get("preselected_precision"),
        # pseudo-labels an export would use (items no person labeled), over the rounds that
        # used at least 100: the fewest right, and all rounds pooled
        **pseudo_label_summary(rounds),
        **cards_the_model_had_right(rounds, labels_at=summary.get("labels_to_95pct_dataset")),
        "human_seconds_total": last.get("human_seconds_total"),
        "actions_total": last.get("actions_total"),
        "run_seconds": result["seconds"],
    }


def pseudo_label_summary(rounds: list[dict], at_least: int = 100) -> dict:
    counted = [r for r in rounds if (r.get("pseudo_labels_used") or 0) >= at_least]
    used = sum(r["pseudo_labels_used"] for r in counted)
    right = sum(r["pseudo_labels_used"] * r["pseudo_label_precision"] for r in counted)
    return {
        "pseudo_labels_used_max": max(
            (r.get("pseudo_labels_used") or 0 for r in rounds), default=0
        ),
        "pseudo_label_precision_min": min(
            (r["pseudo_label_precision"] for r in counted), default=None
        ),
        "pseudo_label_precision_pooled": round(right / used, 4) if used else None,
    }


def cards_the_model_had_right(rounds: list[dict], *, labels_at: int | None) -> dict:
    """Where the policy's seconds to (b) go beyond what its model knew: the cards, up to the
    round that reached (b), whose suggestion was the true class but not pre-selected (the
    model had them right, but not surely enough for a page or a pre-selection), what they
    cost, and the seconds to (b) had each been a tile instead of a card. The gap between that
    and the goal is what a better-calibrated model (confidence that tells its right answers
    from its wrong ones) could not close either; the gap to it is what it could.

    Rounds from before `cards_suggestion_right` was recorded fall back to the round's
    share of right suggestions times its cards."""
    from core.effort import COSTS

    if labels_at is None:
        return {"cards_model_right_to_95pct_dataset": None}
    upto = [r for r in rounds if r["labels"] <= labels_at]
    right = sum(
        r["cards_suggestion_right"]
        if "cards_suggestion_right" in r
        else round((r["prefill_accuracy"] or 0) * r["cards"])
        for r in upto
    ) - sum(r.get("preselected_right_cards") or 0 for r in upto)
    seconds = upto[-1]["human_seconds_total"] if upto else 0.0
    return {
        "cards_model_right_to_95pct_dataset": right,
        "seconds_on_cards_model_right": round(right * COSTS.choose_s, 1),
        "seconds_to_95pct_dataset_as_tiles": round(
            seconds - right * (COSTS.choose_s - COSTS.tile_look_s), 1
        ),
    }


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    return round(ours / theirs, 3) if ours is not None and theirs else None


def ratios(policy: dict, baseline: dict) -> dict:
    """Policy over baseline for every goal, and the policy's seconds to (b) had the cards its
    model had right been tiles over the baseline's actual seconds to (b)."""
    out = {goal: _ratio(policy.get(goal), baseline.get(goal)) for goal in GOALS}
    out["seconds_to_95pct_dataset_as_tiles"] = _ratio(
        policy.get("seconds_to_95pct_dataset_as_tiles"), baseline.get("seconds_to_95pct_dataset")
    )
    return out


def chart(path: Path, results: dict, title: str) -> None:
    from core.charts import line_chart

    series = []
    for name, result in results.items():
        rounds = result["rounds"]
        series.append(
            (
                f"{name}: dataset accuracy",
                [(r["human_seconds_total"], r["dataset_accuracy"]) for r in rounds],
            )
        )
        series.append(
            (
                f"{name}: model test accuracy",
                [
                    (r["human_seconds_total"], r["test_accuracy"])
                    for r in rounds
                    if r["test_accuracy"] is not None
                ],
            )
        )
    svg = str(
        line_chart(
            series, x_label="annotator seconds (cost model)", y_label="accuracy", width=900,
            height=420,
        )
    )  # fmt: skip
    path.write_text(
        svg.replace("<svg ", '<svg style="background:#fff;font:12px sans-serif" ', 1).replace(
            "</svg>", f'<text x="460" y="12" text-anchor="middle">{escape(title)}</text></svg>'
        )
        + "\n"
    )


def session_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments that choose a session's pool (bench/pseudo_label_replay.py runs the
    same policy session)."""
    parser.add_argument(
        "--data", required=True, help="an ImageFolder folder or zip, or 'fashion-mnist'"
    )
    parser.add_argument("--encoder", default="tf_efficientnet_lite0.in1k")
    parser.add_argument("--pool-size", type=int, default=1000)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    session_arguments(parser)
    parser.add_argument("--batch", type=int, default=20, help="retrain every B labels")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    parser.add_argument(
        "--audit-top-share",
        type=float,
        help="the policy's share of audits drawn among the most confident quarter of the open "
        "images (default: the product's)",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="human-effort-"))
    django_setup(work)
    from core.models import Project

    if args.audit_top_share is None:  # the product's, recorded as the value it ran with
        args.audit_top_share = Project._meta.get_field("audit_top_share").default
    from core.evaluation.simulation import Simulation

    data, name = Path(args.data), Path(args.data).stem
    if args.data == "fashion-mnist":
        name = "fashion-mnist"
        data = fashion_mnist_tree(work / "fashion-mnist", args.pool_size * 3, args.test_size * 3)
    started = time.perf_counter()
    results = {}
    log = lambda message: print(message, file=sys.stderr)  # noqa: E731
    with Simulation(
        data,
        encoder=args.encoder,
        pool_size=args.pool_size,
        test_size=args.test_size,
        data_seed=args.seed,
        log=log,
    ) as simulation:
        for session, config in sessions(
            args.pool_size, args.batch, args.seed, args.audit_top_share
        ).items():
            log(f"{name}: {session} ({config})")
            results[session] = simulation.run(config)
        setup = simulation.setup
    policy, baseline = (session_summary(results[s]) for s in ("policy", "baseline"))
    report = {
        "dataset": name,
        "encoder": setup["encoder_used"],
        "pool_size": setup["pool_size"],
        "test_size": setup["test_size"],
        "cost_model": results["policy"]["summary"]["cost_model"],
        "policy": policy,
        "baseline": baseline,
        "ratio": ratios(policy, baseline),
        "goals": {
            "seconds_ratio_max": round(1 / 3, 3),
            "actions_per_image_to_95pct_dataset_max": 0.35,
        },
        "settings": {k: v for k, v in vars(args).items() if k != "out"} | {"out": str(args.out)},
        "machine": f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    full = {**report, "rounds": {s: r["rounds"] for s, r in results.items()}}
    (args.out / f"human-effort-{name}.json").write_text(json.dumps(full, indent=2) + "\n")
    chart(
        args.out / f"human-effort-{name}.svg",
        results,
        f"{name}, {setup['encoder_used']}, pool {setup['pool_size']}: policy vs one-by-one",
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
