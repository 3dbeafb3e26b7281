"""The reference apps that start-up is measured against, started exactly like the portal.

- HELLO: the floor of the issues' goal, a minimal Flask + waitress app answering /healthz.
- ORM: the same app with Flask-SQLAlchemy, one model and /healthz counting its rows in an
  SQLite file (FLOOR_DATABASE): what any Flask app that keeps its data through the ORM pays
  before its first answer. It shows how much of the portal's start-up is that price and how
  much is the portal's own (its 16 models, extensions and blueprints).

Both print `... running at <url>` on stdout, like `campus-portal --headless`.
"""

from __future__ import annotations

HELLO = """
import signal, sys
from flask import Flask
from waitress.server import create_server

app = Flask(__name__)


@app.get("/healthz")
def healthz():
    return {"status": "ok"}


server = create_server(app, host="127.0.0.1", port=0)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print(f"Hello running at http://127.0.0.1:{server.effective_port}/", flush=True)
server.run()
"""

ORM = """
import os, signal, sys
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from waitress.server import create_server


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Note(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str]


app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.abspath(os.environ["FLOOR_DATABASE"])
db.init_app(app)
with app.app_context():
    db.create_all()


@app.get("/healthz")
def healthz():
    notes = db.session.execute(db.select(db.func.count(Note.id))).scalar_one()
    return {"status": "ok", "notes": notes}


server = create_server(app, host="127.0.0.1", port=0)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print(f"Hello ORM running at http://127.0.0.1:{server.effective_port}/", flush=True)
server.run()
"""
