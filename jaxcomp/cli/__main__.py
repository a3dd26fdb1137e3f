"""``python -m jaxcomp.cli``: the ``jaxcomp`` command."""

import sys

from . import main

sys.exit(main())
