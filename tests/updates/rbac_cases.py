from tests.rbac import PUBLIC, Case

CASES = {
    # The matrix's app runs in desktop mode: the central server's repository is not there.
    "updates.repository_file": Case("GET", "/updates/metadata/timestamp.json", PUBLIC, expect=404),
}
