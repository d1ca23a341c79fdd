"""`python -m harness.reference_till serve ...`: run the reference till (see app.py)."""

import sys

from harness.reference_till.app import main

sys.exit(main())
