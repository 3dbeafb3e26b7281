from tests.rbac import SIGNED_IN, Case

CASES = {
    "profile.index": Case("GET", "/profile/", SIGNED_IN, expect=200),
    "profile.create_token": Case(
        "POST", "/profile/tokens", SIGNED_IN, data={"name": "matrix", "expires": "30"}, expect=201
    ),
    "profile.choose_language": Case(
        "POST", "/profile/language", SIGNED_IN, data={"language": "fr"}, expect=302
    ),
    # Nobody else's token can be revoked: another user's token id is "not found" for everyone.
    "profile.revoke_token": Case(
        "POST", "/profile/tokens/{foreign_token_id}/revoke", SIGNED_IN, expect=404
    ),
}


def setup(db, world):
    from portal.profile.services import create_token
    from tests import factories

    owner = factories.make_user(db, "student")
    world["foreign_token_id"] = create_token(
        db, owner, "someone else's", expires_in_days=None, now=factories.now()
    ).token.id
