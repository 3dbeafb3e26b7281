"""The REST API (/api/v1): JSON over the same service functions as the pages.

spec.py        the flask-smorest Api, the OpenAPI document and its docs page
problems.py    RFC 9457 problem details: the one error shape under /api
auth.py        personal API tokens, the browser session and CSRF for the API
pagination.py  page links and the page envelope
schemas.py     request and response schemas (marshmallow)
catalogue.py, registrations.py, grades.py, attendance.py, submissions.py, admin.py
               the resources, thin: parse, call one service, dump
routes.py      registers every API blueprint (called by portal/__init__.py register_blueprints)
"""

API_PREFIX = "/api/"
API_V1 = "/api/v1"
