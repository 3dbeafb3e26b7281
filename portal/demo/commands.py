"""`flask demo-data`."""

import time
from pathlib import Path

import click
from flask import Flask, current_app

from portal.demo import services
from portal.errors import ValidationError
from portal.extensions import db
from portal.web import db_session


def init_app(app: Flask) -> None:
    @app.cli.command("demo-data")
    @click.option(
        "--size", type=click.Choice(sorted(services.SIZES)), default="small", show_default=True
    )
    @click.option("--seed", type=int, default=2026, show_default=True)
    def demo_data_command(size: str, seed: int) -> None:
        """Load the demo accounts and a generated catalogue (password: demo-pass)."""
        started = time.perf_counter()
        try:
            counts = services.generate(
                db_session(),
                size,
                seed=seed,
                upload_dir=Path(current_app.config["PORTAL"]["UPLOAD_DIR"]),
            )
        except ValidationError as error:
            raise click.ClickException(str(error)) from error
        db.session.commit()
        summary = ", ".join(f"{value} {name}" for name, value in counts.items())
        click.echo(f"Demo data ({size}) loaded in {time.perf_counter() - started:.1f}s: {summary}.")
        click.echo(
            f"Accounts {', '.join(services.DEMO_ACCOUNTS)}; password {services.DEMO_PASSWORD!r}."
        )
