"""``python -m idlora_bench.cli`` = ``bench``."""

import sys

from idlora_bench.cli import main

sys.exit(main())
