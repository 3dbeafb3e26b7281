from tests.rbac import ANONYMOUS, PUBLIC, ROLES, SIGNED_IN, Case

CASES = {
    # Signed in already: sent on to the home page.
    "auth.login": Case(
        "GET", "/login", PUBLIC, expect={ANONYMOUS: 200, **dict.fromkeys(ROLES, 302)}
    ),
    "auth.change_own_password": Case("GET", "/password", SIGNED_IN),
    "auth.logout": Case("POST", "/logout", PUBLIC, ends_session=True),
}
