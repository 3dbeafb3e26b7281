from tests.rbac import PUBLIC, SIGNED_IN, Case

CASES = {
    "main.index": Case(
        "GET",
        "/",
        SIGNED_IN,
        expect={"student": 302, "instructor": 200, "lab_staff": 200, "admin": 200},
    ),
    # The matrix's database is made by create_all, not the migrations: no alembic_version, so
    # the health check says "degraded".
    "main.about": Case("GET", "/about", PUBLIC),
    "main.healthz": Case("GET", "/healthz", PUBLIC, expect=503),
    # What nginx shows for a body over its limit (error_page 413): a page, for anyone.
    "main.upload_too_large": Case("GET", "/upload-too-large", PUBLIC, expect=413),
}
