"""Entry point of the frozen application: the same command as the installed `campus-portal`,
and, with the internal option --window-host, its window's process (desktop/window_process.py)."""

import sys

if __name__ == "__main__":
    if sys.argv[1:2] == ["--window-host"]:
        from desktop.window_process import run_window_host

        sys.exit(run_window_host())
    from desktop.launcher import main

    sys.exit(main())
