"""The benchmarks are not run by `make test`, so nothing else notices when a name they import
moves or goes (bench/retrain.py imported a removed function for a whole stop): every name a
bench imports from our code or another bench, at the top or inside a function, must exist."""

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHES = sorted((ROOT / "bench").glob("*.py"))


@pytest.mark.parametrize("bench", BENCHES, ids=lambda p: p.name)
def test_every_name_a_bench_imports_from_our_code_exists(bench):
    missing = []
    for node in ast.walk(ast.parse(bench.read_text())):
        if not (isinstance(node, ast.ImportFrom) and node.module and node.level == 0):
            continue
        if node.module.split(".")[0] not in ("core", "models_ml", "annotator", "bench"):
            continue
        module = importlib.import_module(node.module)
        for alias in node.names:
            if not hasattr(module, alias.name):
                try:
                    importlib.import_module(f"{node.module}.{alias.name}")
                except ImportError:
                    missing.append(f"{node.module}.{alias.name}")
    assert missing == []


def test_the_certification_bench_scores_the_apps_cuts_against_the_truth():
    """Separable blobs: the app's rule certifies a cut from 100 audits, and the bench reports
    the coverage and the true precision of the pseudo-labels it makes on the open images."""
    import numpy as np

    from bench.pseudo_label_certification import cell, summary

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 300)
    X = rng.normal(size=(900, 8)) + 6 * np.eye(3, 8)[y]
    result = cell(X, y, labels=60, audits=120, seed=0, target=0.95)
    assert result["audits_right"] > 0.95 and result["oracle_coverage"] > 0.9
    assert result["certified"]["precision"] >= 0.95 and result["certified"]["coverage"] > 0.5
    noisy = dict(result, certified={"coverage": 0.4, "precision": 0.9})
    assert summary([result, noisy], "certified", 0.95) == {
        "cells": 2,
        "certified": 2,
        "misses": 1,
        "mean_coverage": round((result["certified"]["coverage"] + 0.4) / 2, 4),
    }


def test_the_replay_bench_scores_the_apps_cuts_and_splits_the_audits_by_age():
    """A recorded version: 60 audits, all right at 0.99 (40 of them answered while twice as
    many images were open), 40 wrong at 0.5. The replay certifies the pooled cut, applies it
    to the open images on the confidence the version pseudo-labels on, scores them against
    the truth class by class, and checks its cuts against the ones the app wrote."""
    import numpy as np

    from bench.pseudo_label_replay import audit_age_split, recent_audits_only, replay_version

    conf = np.r_[np.full(60, 0.99), np.full(40, 0.5)]
    pred = np.r_[np.arange(60) % 2, np.zeros(40, int)]
    right = np.r_[np.ones(60, bool), np.zeros(40, bool)]
    open_ids = np.arange(1000, 1010)
    record = {
        "labels": 150,
        "audit_conf": conf,
        "audit_pred": pred,
        "audit_correct": right,
        "audit_open_then": np.r_[np.full(40, 21), np.full(60, 10)],
        "open_ids": open_ids,
        # rows 0-3 class 0 and 4-5 class 1 confident; 6-9 below the cut
        "open_conf": np.r_[np.full(6, 0.99), np.full(4, 0.4)],
        "open_share_conf": np.r_[np.full(6, 0.99), np.full(4, 0.4)],
        "open_pred": np.array([0, 0, 0, 0, 1, 1, 0, 1, 0, 1]),
        "app_cuts": {0: 0.99, 1: 0.99},
    }
    truth = {int(i): 0 for i in open_ids} | {1003: 1, 1004: 1, 1005: 0}
    row = replay_version(record, truth, target=0.95)
    assert row["pooled_cut"] == 0.99 and row["audits_above_cut"] == 60
    assert row["pseudo_labels"] == 6 and row["pseudo_label_precision"] == round(4 / 6, 4)
    assert row["pseudo_labels_by_class"] == {0: [4, 3], 1: [2, 1]}
    assert row["cuts_match"] is True
    assert (
        replay_version(dict(record, app_cuts={0: 0.99}), truth, target=0.95)["cuts_match"] is False
    )
    split = audit_age_split(record, pooled_cut=0.99, old=1.5)
    assert split["old"] == {"audits": 40, "accuracy": 1.0, "share_above_cut": 1.0}
    assert split["recent"] == {
        "audits": 60,
        "accuracy": round(20 / 60, 4),
        "share_above_cut": round(20 / 60, 4),
    }
    wrong = dict(record, audit_correct=np.zeros(100, bool))
    assert replay_version(wrong, truth, target=0.95) is None  # no pooled cut certified
    # The recent audits alone (20 right at 0.99 among 60) are too few to certify the cut;
    # with the old ones dropped nothing is pseudo-labeled.
    recent = recent_audits_only(record, old=1.5)
    assert len(recent["audit_conf"]) == 60 and recent["audit_correct"].sum() == 20
    assert replay_version(recent, truth, target=0.95) is None
    assert len(recent_audits_only(record, old=2.5)["audit_conf"]) == 100
    aged = recent_audits_only(dict(record, audit_labeled_at=np.arange(100)), old=1.5)
    assert list(aged["audit_labeled_at"]) == list(range(40, 100))  # every audit row kept in step


def test_the_replay_keeps_pseudo_labels_as_the_app_does_and_scores_them_per_version():
    """Version 1 certifies a cut and makes 6 pseudo-labels (4 right). Version 2 certifies
    nothing (every audit wrong now): until stop 40 it kept the ones still open whose class it
    still predicts (1000 was answered, 1001 changed class), 2 right of 4; the app now reads
    them off version 2's curve, which puts them below the target, and keeps none."""
    import numpy as np

    from bench.pseudo_label_replay import app_cuts, kept_session

    open_ids = np.arange(1000, 1010)
    first = {
        "labels": 150,
        "audit_conf": np.r_[np.full(60, 0.99), np.full(40, 0.5)],
        "audit_pred": np.r_[np.arange(60) % 2, np.zeros(40, int)],
        "audit_correct": np.r_[np.ones(60, bool), np.zeros(40, bool)],
        "open_ids": open_ids,
        "open_conf": np.r_[np.full(6, 0.99), np.full(4, 0.4)],
        "open_share_conf": np.r_[np.full(6, 0.99), np.full(4, 0.4)],
        "open_pred": np.array([0, 0, 0, 0, 1, 1, 0, 1, 0, 1]),
        "app_cuts": {},
    }
    second = dict(
        first,
        labels=170,
        audit_correct=np.zeros(100, bool),
        open_ids=open_ids[1:],
        open_conf=first["open_conf"][1:],
        open_share_conf=first["open_share_conf"][1:],
        open_pred=np.array([1, 0, 0, 1, 1, 0, 1, 0, 1]),
    )
    truth = {int(i): 0 for i in open_ids} | {1003: 1, 1004: 1, 1005: 0}
    app = kept_session([first, second], truth, target=0.95, rule=app_cuts)
    assert app["by_version"] == [[150, 6, 4], [170, 0, 0]]
    session = kept_session([first, second], truth, target=0.95, rule=app_cuts, certify_kept=False)
    assert session["by_version"] == [[150, 6, 4], [170, 4, 2]]
    assert session["first_version_labels_made_precision"] == [150, 6, round(4 / 6, 4)]
    assert session["most_at_once"] == 6 and session["precision_pooled_over_versions"] == 0.6
    assert session["worst_version_precision"] is None  # no version with 20 or more


def test_the_class_curve_candidate_holds_back_a_class_its_own_audits_put_below_the_target():
    """Both classes' audits above the pooled cut (0.99) are all right, so the app's check
    passes both; but class 1 was right on 6 of its 60 audits at 0.8 where class 0 was right
    on 57: its own curve, pooled towards the common one, reads about 0.86 at 0.99, and the
    candidate gives it no cut while class 0 keeps the pooled one."""
    import numpy as np

    from bench.pseudo_label_replay import (
        FLAT_CURVE,
        LOOSE_CLASS_CURVES,
        LOOSE_CLASS_CURVES_CHECKED_AT_CUT,
        STRICT_CLASS_CURVES,
        app_cuts,
    )

    conf = np.r_[np.full(100, 0.99), np.full(60, 0.8), np.full(5, 0.99), np.full(60, 0.8)]
    pred = np.r_[np.zeros(160, int), np.ones(65, int)]
    right = np.r_[np.ones(100, bool), np.arange(60) < 57, np.ones(5, bool), np.arange(60) < 6]
    record = {
        "audit_conf": conf,
        "audit_pred": pred,
        "audit_correct": right,
        "open_ids": np.arange(1000, 1040),
        "open_conf": np.full(40, 0.99),
        "open_pred": np.r_[np.zeros(20, int), np.ones(20, int)],
    }
    flat = {"prior_mean": FLAT_CURVE}
    pooled, cuts = app_cuts(record, target=0.95, **flat, class_curve_sd=None)
    assert pooled == 0.99 and cuts[0].threshold == cuts[1].threshold == 0.99
    pooled, cuts = app_cuts(record, target=0.95, **flat, **STRICT_CLASS_CURVES)
    assert pooled == 0.99 and cuts[0].threshold == 0.99 and cuts[1].threshold is None
    # with the prior centred on a calibrated model, and with the looser class curves, the
    # same class is held back
    for candidate in (STRICT_CLASS_CURVES, LOOSE_CLASS_CURVES, LOOSE_CLASS_CURVES_CHECKED_AT_CUT):
        cuts = app_cuts(record, target=0.95, prior_mean=(0.0, 1.0), **candidate)[1]
        assert cuts[0].threshold == 0.99 and cuts[1].threshold is None


def test_the_replay_scores_each_candidate_pooled_cut_on_the_versions_with_enough_audits():
    """The pooled cut alone per candidate curve: version 1 (100 audits, the 60 at 0.99 right)
    certifies 0.99 under the app's curve and pseudo-labels the 6 open images there (4
    right); version 2's audits are all wrong, so no candidate certifies anything; a version
    with fewer audits than a curve needs is not counted."""
    import numpy as np

    from bench.pseudo_label_replay import POOLED_CUT_CANDIDATES, pooled_cut_candidates

    first = {
        "audit_conf": np.r_[np.full(60, 0.99), np.full(40, 0.5)],
        "audit_correct": np.r_[np.ones(60, bool), np.zeros(40, bool)],
        "open_ids": np.arange(1000, 1010),
        "open_conf": np.r_[np.full(6, 0.99), np.full(4, 0.4)],
        "open_pred": np.array([0, 0, 0, 0, 1, 1, 0, 1, 0, 1]),
    }
    second = dict(first, audit_correct=np.zeros(100, bool))
    few = dict(first, audit_conf=first["audit_conf"][:50], audit_correct=np.ones(50, bool))
    truth = {int(i): 0 for i in first["open_ids"]}
    report = pooled_cut_candidates([first, second, few], truth, target=0.95)
    assert set(report) == set(POOLED_CUT_CANDIDATES)
    assert report["app"] == {
        "fresh_pseudo_labels_summed_over_versions": 6,
        "right": 4,
        "precision": round(4 / 6, 4),
        "versions_with_no_cut": 1,
        "worst_version_precision": round(4 / 6, 4),
    }
    for row in report.values():
        assert row["versions_with_no_cut"] >= 1  # the second version, every audit wrong
        assert row["right"] <= row["fresh_pseudo_labels_summed_over_versions"] <= 6


def test_the_bound_that_counts_what_left_subtracts_the_wrong_ones_labeled_since():
    """100 audits answered while 950 images were open, none wrong above the cut: at most
    950 x 2.64 % = 25 wrong ones above it in that pool (one-sided 95 %). Five wrong
    predictions above the cut have been labeled since (and one before, which does not
    count): at most 20 are left among the 197 pseudo-labels, so they are at least 89.8 %
    right."""
    import numpy as np

    from bench.pseudo_label_replay import wrong_left_bound
    from models_ml.confidence import wilson_upper_bound

    record = {
        "audit_conf": np.r_[np.full(60, 0.99), np.full(40, 0.5)],
        "audit_correct": np.r_[np.ones(60, bool), np.zeros(40, bool)],
        "audit_open_then": np.full(100, 950),
        "audit_labeled_at": np.full(100, 3),
        "labels_oof": {
            "conf": np.r_[np.full(6, 0.99), np.full(10, 0.995), np.full(4, 0.3)],
            "correct": np.r_[np.zeros(6, bool), np.ones(10, bool), np.zeros(4, bool)],
            "labeled_at": np.r_[2, np.full(5, 7), np.full(10, 5), np.full(4, 9)],
        },
    }
    bound = wrong_left_bound(record, pooled_cut=0.99, pseudo_labels=197)
    most = 950 * wilson_upper_bound(0, 100)
    assert 24.5 < most < 25.5 and bound["wrong_in_pool_at_most"] == round(most, 1)
    assert bound["wrong_removed_since"] == 5.0
    assert bound["precision_at_least"] == round(1 - (most - 5) / 197, 4)
    assert 0.89 < bound["precision_at_least"] < 0.9
    assert wrong_left_bound(record, pooled_cut=0.99, pseudo_labels=0) is None


def test_the_semi_supervised_bench_scores_every_head_at_every_budget():
    """Three well-separated blobs: every head is near perfect with the full labels and
    at 12 random labels, the goal is 90 % of the full-label accuracy, and a seed gives the
    same figures twice."""
    import numpy as np

    from bench.semi_supervised_heads import SELF_TRAINING, SPREADING, head_accuracies

    rng = np.random.default_rng(0)
    centres = np.eye(3, 8) * 6

    def blobs(n):
        y = np.arange(n) % 3
        return (centres[y] + rng.normal(size=(n, 8))).astype(np.float32), y

    X_pool, y_pool = blobs(90)
    X_test, y_test = blobs(60)
    report = head_accuracies(X_pool, y_pool, X_test, y_test, budgets=[12, 24], draws=2)
    assert report["full_label_accuracy"] >= 0.95
    assert report["goal"] == round(0.9 * report["full_label_accuracy"], 4)
    heads = {"app"} | {f"self_training_{t}" for t in SELF_TRAINING}
    heads |= {f"spreading_{s}" for s in SPREADING}
    for budget in ("12", "24"):
        assert set(report["by_budget"][budget]) == heads
        assert all(cell["mean"] >= 0.9 for cell in report["by_budget"][budget].values())
    again = head_accuracies(X_pool, y_pool, X_test, y_test, budgets=[12, 24], draws=2)
    assert again == report
