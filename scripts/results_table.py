#!/usr/bin/env python
"""Print the README results table from the runs of scripts/results_table.sh (markdown)."""

import json
from pathlib import Path

print("| model | front end | trainable front-end params | epochs | val acc | test acc (held-out voices) "
      "| test macro F1 | flite acc (unseen engine) | train time |")
print("|---|---|---|---|---|---|---|---|---|")
for model in ("linear", "bcresnet-1"):
    for fe in ("fixed", "mel", "stft", "both"):
        run = Path(f"runs/table-{model}-{fe}")
        m = json.loads((run / "metrics.json").read_text())
        flite = json.loads((run / "flite40.json").read_text())
        extra = {"fixed": 0, "mel": 40 * 241, "stft": 2 * 241 * 480, "both": 40 * 241 + 2 * 241 * 480}[fe]
        print(f"| {model} | {fe} | {extra:,} | {m['epochs']} | {m['val_accuracy']:.1%} | {m['test_accuracy']:.1%} "
              f"| {m['test_f1_macro']:.3f} | {flite['accuracy']:.1%} | {m['seconds'] / 60:.1f} min |")
