from tests.rbac import ANONYMOUS, PUBLIC, ROLES, SIGNED_IN, Case

CASES = {
    # Signed in already: sent on to the home page.
    "auth.login": Case(
        "GET", "/login", PUBLIC, expect={ANONYMOUS: 200, **dict.fromkeys(ROLES, 302)}
    ),
    # Single sign-on: signed in already, sent on to the home page; where `oidc` is not a sign-in
    # method (this matrix's portal), there is nothing here (tests/browser/test_campus_sign_in.py
    # signs in through a real provider).
    "auth.oidc_start": Case(
        "GET", "/login/oidc", PUBLIC, expect={ANONYMOUS: 404, **dict.fromkeys(ROLES, 302)}
    ),
    "auth.oidc_callback": Case(
        "GET",
        "/login/oidc/callback",
        PUBLIC,
        expect={ANONYMOUS: 404, **dict.fromkeys(ROLES, 302)},
    ),
    "auth.change_own_password": Case("GET", "/password", SIGNED_IN),
    "auth.logout": Case("POST", "/logout", PUBLIC, ends_session=True),
}
