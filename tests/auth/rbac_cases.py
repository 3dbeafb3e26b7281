from tests.rbac import PUBLIC, Case

CASES = {
    "auth.login": Case("GET", "/login", PUBLIC),
    "auth.logout": Case("POST", "/logout", PUBLIC, ends_session=True),
}
