from tests.rbac import Case

ADMIN = {"admin"}

CASES = {
    "accounts.users": Case("GET", "/admin/users/", ADMIN),
    "accounts.create": Case("GET", "/admin/users/new", ADMIN),
    "accounts.edit": Case("GET", "/admin/users/{other_user_id}/edit", ADMIN),
    "accounts.set_active": Case(
        "POST", "/admin/users/{other_user_id}/active", ADMIN, data={"active": "1"}
    ),
    "accounts.reset_password": Case("GET", "/admin/users/{other_user_id}/password", ADMIN),
}
