"""`python -m caml_evals.judging SUBCOMMAND ...` = `caml-evals judge SUBCOMMAND ...`."""

import sys

from .cli import main

sys.exit(main())
