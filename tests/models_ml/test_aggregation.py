"""Dawid-Skene aggregation (models_ml/aggregation.py) on toy crowds with known truth."""

import numpy as np
import pytest

from models_ml.aggregation import dawid_skene


def crowd(accuracies, n_items=400, n_classes=10, seed=0, per_item=None):
    """Every annotator answers every item (or `per_item` random ones each): right with their
    accuracy, otherwise a uniformly random wrong class."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_classes, n_items)
    rows = []
    for a, accuracy in enumerate(accuracies):
        for i in range(n_items):
            if per_item is not None and a not in per_item(i):
                continue
            answer = truth[i]
            if rng.random() > accuracy:
                answer = (truth[i] + rng.integers(1, n_classes)) % n_classes
            rows.append((i, a, answer))
    items, annotators, answers = (np.array(col) for col in zip(*rows, strict=True))
    return truth, items, annotators, answers


def majority(items, answers, n_items, n_classes, seed=0):
    votes = np.zeros((n_items, n_classes))
    np.add.at(votes, (items, answers), 1)
    noise = np.random.default_rng(seed).random(votes.shape) * 1e-3  # ties broken at random
    return (votes + noise).argmax(axis=1)


def test_one_careful_annotator_outweighs_two_careless_ones_and_reliability_is_measured():
    accuracies = [0.95, 0.55, 0.55]
    truth, items, annotators, answers = crowd(accuracies)
    result = dawid_skene(items, annotators, answers, n_items=400, n_annotators=3, n_classes=10)
    vote = majority(items, answers, 400, 10)
    ds_accuracy = (result.labels == truth).mean()
    assert ds_accuracy >= 0.93 and ds_accuracy >= (vote == truth).mean() + 0.05
    assert np.allclose(result.accuracy, accuracies, atol=0.06)
    assert result.answers.tolist() == [400, 400, 400]
    assert np.allclose(result.posterior.sum(axis=1), 1.0)


def test_a_models_beliefs_break_ties_between_equally_reliable_annotators():
    # Two annotators disagree on item 0; the model is fairly sure it is class 2.
    items, annotators, answers = np.array([0, 0]), np.array([0, 1]), np.array([1, 2])
    beliefs = np.array([[0.1, 0.2, 0.7]])
    with_model = dawid_skene(
        items, annotators, answers, n_items=1, n_annotators=2, n_classes=3, beliefs=beliefs
    )
    assert with_model.labels.tolist() == [2]
    flipped = dawid_skene(
        items, annotators, answers, n_items=1, n_annotators=2, n_classes=3,
        beliefs=beliefs[:, [0, 2, 1]],
    )  # fmt: skip
    assert flipped.labels.tolist() == [1]


def test_with_one_answer_per_item_the_answer_is_the_label():
    truth, items, annotators, answers = crowd([0.8, 0.8], n_items=100, per_item=lambda i: {i % 2})
    result = dawid_skene(items, annotators, answers, n_items=100, n_annotators=2, n_classes=10)
    assert (result.labels[items] == answers).all()


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError):
        dawid_skene([0], [0, 1], [1], n_items=1, n_annotators=2, n_classes=2)
