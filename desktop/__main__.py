"""`python -m desktop`: the same command as the installed `campus-portal`."""

import sys

if sys.argv[1:2] == ["--window-host"]:  # the window's own process: desktop/window_process.py
    from desktop.window_process import run_window_host

    sys.exit(run_window_host())

from desktop.launcher import main

sys.exit(main())
