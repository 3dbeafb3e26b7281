from tests.rbac import PUBLIC, Case

CASES = {
    # Open to everyone (load balancers). The matrix's database is made by create_all, with no
    # migration history, so the schema check says "not ready": 503, for every role alike.
    "operations.readyz": Case("GET", "/readyz", PUBLIC, expect=503),
    # Metrics are collected by the central server only: the desktop answers 404 to everyone.
    "operations.prometheus_metrics": Case("GET", "/metrics", PUBLIC, expect=404),
}
