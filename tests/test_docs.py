"""The README's commands and the benchmark table stay consistent with the repository."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    test_command = next(b for b in blocks[:2] if "pytest" in b)
    assert test_command in (ROOT / ".ci" / "run").read_text()
    assert "umeta run" in blocks[0]


def test_benchmark_table_is_built_from_the_results_files():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_table.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_readme_torchrun_examples_split_their_meta_batch():
    from umeta.config import load_config

    readme = (ROOT / "README.md").read_text()
    examples = re.findall(r"torchrun --nproc_per_node (\d+) -m umeta train --config (\S+)", readme)
    assert examples
    for processes, config in examples:
        meta_batch = load_config(ROOT / config).optim.meta_batch
        assert meta_batch % int(processes) == 0, (config, meta_batch, processes)
