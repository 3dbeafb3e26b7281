"""`python -m desktop`: the same command as the installed `campus-portal`."""

import sys

from desktop.launcher import main

sys.exit(main())
