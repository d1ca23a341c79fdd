"""`python -m harness.link.engine CONFIG.json`: run one link's engine (see `harness.link.engine`)."""

import sys

from harness.link.engine.loop import main

sys.exit(main())
