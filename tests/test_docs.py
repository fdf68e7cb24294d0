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
