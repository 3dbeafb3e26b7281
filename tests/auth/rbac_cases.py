from tests.rbac import ANONYMOUS, PUBLIC, ROLES, Case

CASES = {
    # Signed in already: sent on to the home page.
    "auth.login": Case(
        "GET", "/login", PUBLIC, expect={ANONYMOUS: 200, **dict.fromkeys(ROLES, 302)}
    ),
    "auth.logout": Case("POST", "/logout", PUBLIC, ends_session=True),
}
