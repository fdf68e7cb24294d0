"""Every benchmark script's entry point, `run_main`: errors the user can fix end as one line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from umeta.errors import UmetaError


def run_main(main: Callable[[], object]) -> None:
    """Run a script's ``main()`` as the CLI runs a command: a `UmetaError` (input the user can
    fix: a missing file, a bad flag value) ends as one line on stderr, ``SCRIPT: error: ...``,
    with exit status 2 instead of a traceback; an integer that ``main()`` returns is the exit
    status."""
    try:
        code = main()
    except UmetaError as err:
        print(f"{Path(sys.argv[0]).name}: error: {err}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
