"""`python -m harness.till.reference serve ...`: run the reference till (see app.py)."""

import sys

from harness.till.reference.app import main

sys.exit(main())
