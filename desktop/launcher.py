"""`campus-portal`: serve the portal on 127.0.0.1 from the user's own data directory."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

APP_NAME = "campus-portal"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from portal import __version__

    parser = argparse.ArgumentParser(prog=APP_NAME, description="Campus Portal")
    parser.add_argument("--version", action="version", version=f"Campus Portal {__version__}")
    parser.add_argument("--headless", action="store_true", help="serve without opening a window")
    parser.add_argument(
        "--demo", action="store_true", help="use a separate data dir with demo data"
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="where the database lives")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    return parser.parse_args(argv)


def data_dir_for(args: argparse.Namespace) -> Path:
    import platformdirs

    base = (
        args.data_dir
        or os.environ.get("PORTAL_DATA_DIR")
        or platformdirs.user_data_dir(APP_NAME, appauthor=False)
    )
    path = Path(base)
    return path / "demo" if args.demo and not args.data_dir else path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from flask_migrate import upgrade
    from waitress.server import create_server

    from portal import create_app
    from portal.demo.services import DEMO_ACCOUNTS, DEMO_PASSWORD, generate
    from portal.extensions import db

    data_dir = data_dir_for(args)
    data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app({"DATA_DIR": str(data_dir), "MODE": "desktop"})
    with app.app_context():
        upgrade()
        if args.demo and not db.session.execute(db.text("SELECT 1 FROM users LIMIT 1")).first():
            generate(db.session, "small")
            db.session.commit()
    server = create_server(app, host="127.0.0.1", port=args.port, threads=8)
    url = f"http://127.0.0.1:{server.effective_port}/"  # type: ignore[union-attr]
    print(f"Campus Portal running at {url}", flush=True)
    if args.demo:
        print(f"Demo accounts: {', '.join(DEMO_ACCOUNTS)} (password {DEMO_PASSWORD})", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
