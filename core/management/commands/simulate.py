"""python manage.py simulate --data PATH --strategy NAME --budget N --batch B --seed S --json OUT"""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.charts import Series, learning_curve_file
from core.evaluation.datasets import SimulationError
from core.evaluation.simulation import INITS, RunConfig, Simulation
from core.models import AUTO_ENCODER, LabelingMode, Strategy
from models_ml.encoders import ENCODERS


class Command(BaseCommand):
    help = (
        "Run the labeling loop end to end with an oracle that answers from the dataset's own "
        "labels (PATH: folder or zip with train/<class>/… and test/<class>/…) and write the "
        "learning curve as JSON. Uses a throwaway project, removed at the end."
    )

    def add_arguments(self, parser):
        parser.add_argument("--data", type=Path, required=True)
        parser.add_argument("--strategy", choices=Strategy.values, default=Strategy.ENTROPY)
        parser.add_argument("--budget", type=int, default=200, help="labels to give")
        parser.add_argument("--batch", type=int, default=20, help="retrain every B labels")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--json", type=Path, help="write the result here (default: stdout)")
        parser.add_argument(
            "--encoder",
            default=AUTO_ENCODER,
            help="'auto' (the app's default: measured on the labels), a registry or timm name "
            f"with tag ({', '.join(ENCODERS)}), 'pixels', or a weights path",
        )
        parser.add_argument("--init", choices=INITS, default="random", help="cold start")
        parser.add_argument(
            "--pool-size", type=int, help="train images to import (stratified sample; default all)"
        )
        parser.add_argument(
            "--test-size", type=int, help="test images to evaluate on (stratified; default all)"
        )
        parser.add_argument(
            "--self-training", type=float, metavar="T", help="pseudo-label above confidence T"
        )
        parser.add_argument(
            "--mode",
            choices=LabelingMode.values,
            default=LabelingMode.CARDS,
            help="what the labeling page serves: cards, verification pages, or auto (both, "
            "by expected annotator seconds per label)",
        )
        parser.add_argument(
            "--no-preselect",
            action="store_true",
            help="the annotator is never shown a pre-selected class (every card: choose)",
        )
        parser.add_argument(
            "--audit-share",
            type=float,
            default=0.0,
            help="share of cards that audit a random open image (their answers certify the "
            "pseudo-label cuts: with 0, nothing is pseudo-labeled; projects default to 0.2)",
        )
        parser.add_argument(
            "--audit-top-share",
            type=float,
            default=0.0,
            help="share of those audits (once the model has settled) drawn among the most "
            "confident quarter of the open images (projects default to 0)",
        )
        parser.add_argument("--plot", type=Path, help="also draw the learning curve (an SVG file)")

    def handle(self, *args, **options):
        try:
            config = RunConfig(
                strategy=options["strategy"],
                budget=options["budget"],
                batch=options["batch"],
                seed=options["seed"],
                init=options["init"],
                self_training=options["self_training"],
                mode=options["mode"],
                preselect=not options["no_preselect"],
                audit_share=options["audit_share"],
                audit_top_share=options["audit_top_share"],
            )
            simulation = Simulation(
                options["data"],
                encoder=options["encoder"],
                pool_size=options["pool_size"],
                test_size=options["test_size"],
                data_seed=options["seed"],
                zero_shot=options["init"] == "zero-shot",
                log=lambda message: self.stderr.write(message),
            )
            with simulation:
                notice = simulation.setup["encoder_notice"]
                if notice and not notice.get("auto"):
                    self.stderr.write(
                        f"warning: encoder {options['encoder']!r} could not be loaded; using "
                        f"{simulation.setup['encoder_used']} (see settings.encoder_notice)"
                    )
                result = simulation.run(config)
        except SimulationError as error:
            raise CommandError(str(error)) from error
        text = json.dumps(result, indent=2)
        if options["json"]:
            options["json"].parent.mkdir(parents=True, exist_ok=True)
            options["json"].write_text(text + "\n")
        else:
            self.stdout.write(text)
        summary = result["summary"]
        self.stderr.write(
            f"{config.strategy}: {len(result['rounds'])} rounds, final accuracy "
            f"{summary.get('final_accuracy')}, labels to 90% of full-label accuracy "
            f"({summary.get('full_label_accuracy')}): {summary.get('labels_to_90pct')}, "
            f"AULC {summary.get('aulc')}, pre-selected {summary.get('mean_preselected_share')} "
            f"of cards (right at least {summary.get('min_preselected_right')} per round), "
            f"encoder {summary.get('encoder_final')}, {result['seconds']} s"
        )
        if options["plot"]:
            rounds = result["rounds"]
            learning_curve_file(
                options["plot"],
                [
                    Series(
                        f"{config.strategy} (seed {config.seed})",
                        [r["labels"] for r in rounds],
                        [[r["test_accuracy"] for r in rounds]],
                    )
                ],
                title=f"{options['data'].name}: {config.strategy}, init {config.init}, "
                f"encoder {result['settings']['encoder_used']}",
                reference=summary.get("full_label_accuracy"),
            )
