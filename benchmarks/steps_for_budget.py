"""The step count that fills a time budget, from a probe run's metrics (the GPU scripts).

    python benchmarks/steps_for_budget.py PROBE_RUN_DIR BUDGET_S [START_STEP]

Prints ``START_STEP + max(100, 0.95 * BUDGET_S * rate)``, where the rate in steps/s is the
slowest ``tasks_per_s`` logged past ``START_STEP`` (the first window, warming up, left out when
there are several) over the run's ``optim.meta_batch``. So a cosine schedule set to that many
steps ends with the time.
"""

from __future__ import annotations

import json
import sys

from entry import run_main


def main() -> None:
    run, budget = sys.argv[1], float(sys.argv[2])
    start = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    batch = json.load(open(f"{run}/config.json"))["optim"]["meta_batch"]
    rates = [record["tasks_per_s"] for record in map(json.loads, open(f"{run}/metrics.jsonl"))
             if "tasks_per_s" in record and record["step"] > start]
    rate = min(rates[1:]) if len(rates) > 1 else rates[-1]
    print(start + max(100, int(0.95 * budget * rate / batch)))


if __name__ == "__main__":
    run_main(main)
