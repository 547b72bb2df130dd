#!/usr/bin/env python3
"""Generate reference fixtures for the Rust port of Chronos-2.

Run from the repository root:

    python3 scripts/generate_fixtures.py                 # everything (wipes and rewrites)
    python3 scripts/generate_fixtures.py --only A,B      # only cases A and B, other files kept
    python3 scripts/generate_fixtures.py --help          # the other options

The sections live in the package scripts/fixtures/ (one module per kind of case).

Requires `chronos-forecasting==2.3.2` (with torch, transformers), pandas and pyarrow.
Everything runs on the CPU in float32 with fixed seeds, so the output is deterministic
for a given set of library versions (recorded in tests/fixtures/manifest.json).

Output (all under tests/fixtures/, which a full run wipes and rewrites):
  models/<name>/{config.json,model.safetensors}  small random Chronos-2 models (HF layout)
  cases/<case>.json                              reference inputs + expected outputs
  dataframes/<case>/{input.csv|input.parquet,future.csv,expected.csv}
  manifest.json                                  case list, library versions, attention impl

See scripts/README.md for the JSON schema.

Number format: every float32 value is written with the shortest decimal string that
round-trips to the same float32 (numpy's `str(np.float32)`), and it is checked that parsing
that string as f64 and rounding to f32 gives back the exact value. NaN is written as `null`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
