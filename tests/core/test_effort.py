"""The human-effort cost model (core/evaluation/effort.py) and its metrics."""

from collections import Counter

import pytest

from core.effort import COSTS, CostModel, actions_count
from core.evaluation.effort import (
    card_action,
    dataset_accuracy,
    pseudo_label_hits,
    pseudo_label_hits_by_class,
)
from core.evaluation.metrics import effort_summary


def test_the_cost_model_is_the_keystroke_level_model_as_documented():
    assert COSTS.confirm_s == pytest.approx(1.35 + 0.20)  # look, Enter
    assert COSTS.choose_s == pytest.approx(2 * 1.35 + 0.20)  # look, recall the key, key
    actions = Counter(confirm=10, choose=4, skip=1)
    assert COSTS.seconds(actions) == pytest.approx(10 * 1.55 + 4 * 2.90 + 1 * 1.55)
    assert CostModel(confirm_s=1, choose_s=2, skip_s=3).seconds(actions) == 10 + 8 + 3


def test_a_page_costs_a_look_per_tile_a_mark_per_wrong_one_and_one_accept():
    assert COSTS.tile_look_s == 0.5
    assert COSTS.toggle_s == pytest.approx(1.10 + 0.20)  # point at the tile, click
    assert COSTS.accept_page_s == pytest.approx(1.35 + 0.20)  # last check, Enter
    page = Counter(tile_look=36, toggle=4, accept_page=1)
    assert COSTS.seconds(page) == pytest.approx(36 * 0.5 + 4 * 1.3 + 1.55)
    assert actions_count(page) == 5  # looking is not an action
    # Expected costs the labeling policy compares: 36 tiles at 0.9 -> 3.6 expected marks.
    assert COSTS.page_seconds([0.9] * 36) == pytest.approx(18 + 3.6 * 1.3 + 1.55)
    assert COSTS.page_seconds_per_label([0.9] * 36) == pytest.approx((18 + 4.68 + 1.55) / 32.4)
    assert COSTS.page_seconds_per_label([0.0] * 8) == float("inf")
    assert COSTS.card_seconds(preselected_confidence=None) == pytest.approx(2.9)
    assert COSTS.card_seconds(preselected_confidence=0.8) == pytest.approx(0.8 * 1.55 + 0.2 * 2.9)
    # The same counts at another price per tile (the benchmark's sensitivity figure).
    assert COSTS.with_tile_look(1.0).seconds(page) == pytest.approx(COSTS.seconds(page) + 18)


def test_only_a_right_pre_selection_is_a_confirmation():
    assert card_action(preselected=True, preselected_right=True) == "confirm"
    assert card_action(preselected=True, preselected_right=False) == "choose"
    assert card_action(preselected=False, preselected_right=False) == "choose"


def test_dataset_accuracy_takes_human_labels_first_and_counts_unlabeled_as_wrong():
    truth = {1: 0, 2: 0, 3: 1, 4: 1, 5: 0}
    human = {1: 0, 2: 1}  # one right, one wrong
    pseudo = {2: 0, 3: 1, 4: 0}  # 2 is human-labeled: its pseudo-label is not used
    assert dataset_accuracy(truth=truth, human=human, pseudo=pseudo) == (0.4, 0.8)
    # the pseudo-labels an export uses: 3 (right) and 4 (wrong); 2's is overridden by a person
    assert pseudo_label_hits(truth=truth, human=human, pseudo=pseudo) == (1, 2)
    # by the pseudo-label's class: 3 says 1 (right), 4 says 0 (wrong)
    assert pseudo_label_hits_by_class(truth=truth, human=human, pseudo=pseudo) == {
        1: (1, 1),
        0: (0, 1),
    }


def test_effort_summary_finds_the_first_round_past_each_target():
    rounds = [
        {"labels": 10, "test_accuracy": None, "dataset_accuracy": 0.2, "dataset_coverage": 0.2,
         "actions_total": 10, "human_seconds_total": 29.0},
        {"labels": 20, "test_accuracy": 0.7, "dataset_accuracy": 0.6, "dataset_coverage": 0.9,
         "actions_total": 20, "human_seconds_total": 50.0},
        {"labels": 30, "test_accuracy": 0.8, "dataset_accuracy": 0.96, "dataset_coverage": 1.0,
         "actions_total": 30, "human_seconds_total": 66.5, "human_seconds_total_tile_1s": 70.0},
    ]  # fmt: skip
    summary = effort_summary(rounds, full_label_accuracy=0.8, pool_size=100)
    assert summary["seconds_to_90pct_model"] == 66.5  # 0.7 < 0.72 <= 0.8
    assert summary["seconds_to_95pct_dataset"] == 66.5
    assert summary["actions_per_image_to_95pct_dataset"] == 0.3
    assert summary["final_dataset_coverage"] == 1.0
    assert summary["labels_to_95pct_dataset"] == 30
    assert summary["seconds_to_95pct_dataset_tile_1s"] == 70.0
    assert effort_summary(rounds[:2], 0.8, 100)["seconds_to_95pct_dataset"] is None


def test_human_effort_bench_pools_pseudo_label_precision_over_rounds_that_used_enough():
    from bench.human_effort import pseudo_label_summary

    rounds = [
        {"pseudo_labels_used": 50, "pseudo_label_precision": 0.5},  # too few to count
        {"pseudo_labels_used": 200, "pseudo_label_precision": 0.9},
        {"pseudo_labels_used": 100, "pseudo_label_precision": 0.96},
        {"pseudo_labels_used": 0, "pseudo_label_precision": None},
    ]
    assert pseudo_label_summary(rounds) == {
        "pseudo_labels_used_max": 200,
        "pseudo_label_precision_min": 0.9,
        "pseudo_label_precision_pooled": 0.92,
    }
    assert pseudo_label_summary(rounds[:1])["pseudo_label_precision_pooled"] is None


def test_human_effort_bench_prices_the_cards_the_model_had_right_up_to_the_dataset_goal():
    from bench.human_effort import cards_the_model_had_right
    from core.effort import COSTS

    rounds = [
        {"labels": 20, "cards": 20, "cards_suggestion_right": 5, "preselected_right_cards": 0,
         "human_seconds_total": 58.0},
        {"labels": 40, "cards": 10, "cards_suggestion_right": 8, "preselected_right_cards": 2,
         "human_seconds_total": 90.0},
        # from before the count was recorded: 0.5 of 10 cards
        {"labels": 60, "cards": 10, "prefill_accuracy": 0.5, "human_seconds_total": 120.0},
        {"labels": 80, "cards": 20, "cards_suggestion_right": 20, "human_seconds_total": 178.0},
    ]  # fmt: skip
    out = cards_the_model_had_right(rounds, labels_at=60)  # the last round is past (b)
    assert out["cards_model_right_to_95pct_dataset"] == 5 + 8 - 2 + 5
    assert out["seconds_on_cards_model_right"] == round(16 * COSTS.choose_s, 1)
    assert out["seconds_to_95pct_dataset_as_tiles"] == round(
        120.0 - 16 * (COSTS.choose_s - COSTS.tile_look_s), 1
    )
    assert cards_the_model_had_right(rounds, labels_at=None) == {
        "cards_model_right_to_95pct_dataset": None
    }
