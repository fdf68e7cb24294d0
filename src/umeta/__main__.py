"""``python -m umeta`` runs the command line (and ``torchrun -m umeta``)."""

import sys

from umeta.cli import main

sys.exit(main())
