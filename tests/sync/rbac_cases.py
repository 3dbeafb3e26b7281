"""The device endpoints answer devices, not signed-in people: they are public routes that
check a device credential themselves (tests/sync), and exist on the central server only, so
in the matrix's desktop app every one of them is 404 for everybody."""

from tests.rbac import PUBLIC, Case

_SHA = "0" * 64

CASES = {
    "sync.enrol": Case("POST", "/sync/v1/enrol", PUBLIC),
    "sync.add_account": Case("POST", "/sync/v1/accounts", PUBLIC),
    "sync.push": Case("POST", "/sync/v1/push", PUBLIC),
    "sync.pull": Case("POST", "/sync/v1/pull", PUBLIC),
    "sync.status": Case("GET", "/sync/v1/status", PUBLIC),
    "sync.upload_file": Case("PUT", f"/sync/v1/files/{_SHA}", PUBLIC),
    "sync.file_status": Case("GET", f"/sync/v1/files/{_SHA}/status", PUBLIC),
    "sync.download_file": Case("GET", f"/sync/v1/files/{_SHA}", PUBLIC),
}
