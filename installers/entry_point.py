"""Entry point of the frozen application: the same command as the installed `campus-portal`."""

import sys

from desktop.launcher import main

if __name__ == "__main__":
    sys.exit(main())
