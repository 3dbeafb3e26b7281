from tests.rbac import PUBLIC, SIGNED_IN, Case

CASES = {
    "auth.login": Case("GET", "/login", PUBLIC),
    "auth.change_own_password": Case("GET", "/password", SIGNED_IN),
    "auth.logout": Case("POST", "/logout", PUBLIC, ends_session=True),
}
