"""Flask extensions, created once here and bound to the app in the factory.

Flask-Migrate is not among them: it imports Alembic, so portal.database binds it on first use.
The models do not import this module: Flask-SQLAlchemy is bound to their declarative base here.
"""

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from portal import ratelimit
from portal.models import Base

db = SQLAlchemy(model_class=Base)
babel = Babel()
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[], strategy=ratelimit.NAME)
