"""python -m smglm: the smglm command line."""

import sys

from smglm.cli import main

sys.exit(main())
