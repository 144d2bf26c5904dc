"""Run mypy on the package and fail when it reports more errors than the baseline.

The baseline (.ci/mypy-baseline.txt) holds the number of errors when typing checks were
introduced; it may only go down. After fixing errors, lower it:
``python .ci/check_mypy.py --update``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BASELINE = Path(__file__).with_name("mypy-baseline.txt")


def count_errors() -> tuple[int, str]:
    run = subprocess.run([sys.executable, "-m", "mypy", "src/napari_nanosims"],
                         capture_output=True, text=True, check=False)
    match = re.search(r"Found (\d+) errors?", run.stdout)
    if match is None and "Success" not in run.stdout:
        raise SystemExit(f"mypy did not run:\n{run.stdout}{run.stderr}")
    return (int(match.group(1)) if match else 0), run.stdout


def main() -> int:
    errors, report = count_errors()
    if "--update" in sys.argv:
        BASELINE.write_text(f"{errors}\n")
        print(f"mypy baseline set to {errors}")
        return 0
    baseline = int(BASELINE.read_text().split()[0])
    if errors > baseline:
        print(report)
        print(f"mypy: {errors} errors, more than the baseline of {baseline}: fix the new ones")
        return 1
    print(f"mypy: {errors} errors (baseline {baseline})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
