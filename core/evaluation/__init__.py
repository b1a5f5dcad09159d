"""Evaluation: simulated labeling with an oracle annotator (`simulate`, the benchmarks), its
datasets and its metrics. Above the app: it drives the same services the web app calls."""
