#!/usr/bin/env python
"""Script entry for training: `python train/train.py ...` is `spotter train ...`.

The training code lives in the package (`spotter.training`), so an installed
spotter can train too; configs for the runs in README are in train/configs/.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spotter.training.run import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
