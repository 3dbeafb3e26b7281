from tests.rbac import PUBLIC, Case

# Public, but 404 for everyone once any account exists (the matrix's world has accounts).
CASES = {
    "setup.first_admin": Case("GET", "/setup/", PUBLIC, expect=404),
    "setup.connect": Case("POST", "/setup/connect", PUBLIC, expect=404),
}
