from tests.rbac import Case

CASES = {
    "audit.log": Case("GET", "/admin/audit/", {"admin"}),
}
