from tests.rbac import PUBLIC, SIGNED_IN, Case

CASES = {
    "main.index": Case("GET", "/", SIGNED_IN),
    "main.healthz": Case("GET", "/healthz", PUBLIC),
}
