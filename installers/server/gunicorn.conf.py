"""gunicorn settings of the central server (/etc/campus-portal/gunicorn.conf.py).

`campus-portal-server serve` runs with the shipped settings (portal/gunicorn_conf.py: gthread
workers, a 60 s timeout, worker recycling, the metrics hooks) whether or not this file is given
with `--config`; what is set here changes them. The import keeps plain
`gunicorn -c this-file 'portal.wsgi:create_server_app()'` on the same settings.
"""

from portal.gunicorn_conf import *  # noqa: F403 (the shipped settings and hooks)

# Change a setting by setting it again here, for example:
# threads = 8
# timeout = 120
