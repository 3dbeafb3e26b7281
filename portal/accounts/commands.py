"""`flask create-user`."""

import click
from flask import Flask

from portal.accounts import services
from portal.errors import ValidationError
from portal.extensions import db
from portal.models import ROLES
from portal.web import db_session


def init_app(app: Flask) -> None:
    @app.cli.command("create-user")
    @click.argument("username")
    @click.option("--role", type=click.Choice(ROLES), default="student", show_default=True)
    @click.option("--name", "full_name", required=True, help="The person's full name.")
    @click.option("--email", default="")
    @click.option("--student-number", default=None)
    @click.password_option(help="Asked for when not given.")
    def create_user_command(
        username: str,
        role: str,
        full_name: str,
        email: str,
        student_number: str | None,
        password: str,
    ) -> None:
        """Create a user account."""
        details = services.UserDetails(
            username=username,
            full_name=full_name,
            role=role,
            email=email,
            student_number=student_number,
        )
        try:
            user = services.create_user(db_session(), details, password)
        except ValidationError as error:
            raise click.ClickException(str(error)) from error
        db.session.commit()
        click.echo(f"Created {user.role} {user.username}.")
