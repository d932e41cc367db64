"""`python -m onellm`: the same command line as `onellm`."""

import sys

from .cli import main

sys.exit(main())
