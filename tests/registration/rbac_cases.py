from tests.rbac import Case

STUDENT = {"student"}

CASES = {
    "registration.mine": Case("GET", "/registrations", STUDENT),
    "registration.register": Case("POST", "/sections/{other_section_id}/register", STUDENT),
    "registration.drop": Case("POST", "/registrations/{registration_id}/drop", STUDENT),
}
