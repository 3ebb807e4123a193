"""`python -m caml_evals.cli ...` = `caml-evals ...`."""

import sys

from . import main

sys.exit(main())
