"""Sync routes in the matrix. The device endpoints (/sync/v1) answer devices, not signed-in
people: they are public routes that check a device credential themselves (tests/sync), and
exist on the central server only, so in the matrix's desktop app every one of them is 404 for
everybody. So are the admin pages (central server only) for admins, and a device's status
pages (an enrolled copy only) for those the policy lets through: the matrix's copy is not
enrolled. tests/sync/test_admin_pages.py and test_device_pages.py check the statuses on a
central server and on an enrolled device."""

import uuid

from tests.rbac import ANONYMOUS, PUBLIC, ROLES, SIGNED_IN, Case

ADMIN = {"admin"}
_SHA = "0" * 64

CASES = {
    "sync.enrol": Case("POST", "/sync/v1/enrol", PUBLIC, expect=404),
    "sync.add_account": Case("POST", "/sync/v1/accounts", PUBLIC, expect=404),
    "sync.push": Case("POST", "/sync/v1/push", PUBLIC, expect=404),
    "sync.pull": Case("POST", "/sync/v1/pull", PUBLIC, expect=404),
    "sync.status": Case("GET", "/sync/v1/status", PUBLIC, expect=404),
    "sync.upload_file": Case("PUT", f"/sync/v1/files/{_SHA}", PUBLIC, expect=404),
    "sync.file_status": Case("GET", f"/sync/v1/files/{_SHA}/status", PUBLIC, expect=404),
    "sync.download_file": Case("GET", f"/sync/v1/files/{_SHA}", PUBLIC, expect=404),
    "sync.sign_in_device": Case("POST", "/sync/v1/sign-in/device", PUBLIC, expect=404),
    "sync.sign_in_token": Case("POST", "/sync/v1/sign-in/token", PUBLIC, expect=404),
    # The central server's pages of a sign-in on a copy: for anyone signed in there
    # (tests/sync/test_device_sign_in.py).
    "device_sign_in.authorize": Case("GET", "/sync/sign-in/authorize", SIGNED_IN, expect=404),
    "device_sign_in.device_page": Case("GET", "/device", SIGNED_IN, expect=404),
    # An enrolled copy's side: the campus sign-in, the browser's way back (no launch cookie,
    # checked by its state), the offline PIN; the PIN's log-in form is a copy's like /login.
    "campus_sign_in.start": Case("POST", "/sign-in/campus", PUBLIC, expect=404),
    "campus_sign_in.status": Case("GET", "/sign-in/campus/status", PUBLIC, expect=404),
    "campus_sign_in.callback": Case("GET", "/sign-in/callback", PUBLIC, expect=404),
    "campus_sign_in.offline_pin": Case("GET", "/offline-pin", SIGNED_IN, expect=404),
    "campus_sign_in.pin_login": Case(
        "GET", "/login/pin", PUBLIC, expect={ANONYMOUS: 200, **dict.fromkeys(ROLES, 302)}
    ),
    # The central server's pages for administrators.
    "sync_admin.devices": Case("GET", "/admin/sync/devices", ADMIN, expect=404),
    "sync_admin.create_code": Case(
        "POST",
        "/admin/sync/enrolment-codes",
        ADMIN,
        data={"username": "nobody", "valid_days": "7"},
        expect=404,
    ),
    "sync_admin.rename": Case(
        "POST", "/admin/sync/devices/{sync_device_id}/name", ADMIN, data={"name": "x"}, expect=404
    ),
    "sync_admin.revoke": Case(
        "POST", "/admin/sync/devices/{sync_device_id}/revoke", ADMIN, expect=404
    ),
    "sync_admin.conflicts": Case("GET", "/admin/sync/conflicts", ADMIN, expect=404),
    "sync_admin.resolve": Case(
        "POST",
        "/admin/sync/conflicts/{sync_conflict_id}/resolve",
        ADMIN,
        data={"action": "keep"},
        expect=404,
    ),
    # A device's status area and everyone's own conflicts.
    "sync_device.status_page": Case("GET", "/sync/", SIGNED_IN, expect=404),
    "sync_device.status_json": Case("GET", "/sync/status.json", PUBLIC, expect=404),
    "sync_device.sync_now": Case("POST", "/sync/now", SIGNED_IN, expect=404),
    "sync_device.export_unsent": Case("GET", "/sync/unsent-changes.json", SIGNED_IN, expect=404),
    "sync_device.enrol_again": Case("GET", "/sync/enrol-again", SIGNED_IN, expect=404),
    "sync_device.my_conflicts": Case("GET", "/sync/my-conflicts", SIGNED_IN),
    # The central server's conflict review for the instructor of a section, and the actions
    # (who may act on which conflict is the service's check: tests/sync/test_conflict_review.py).
    "sync_device.section_conflicts": Case(
        "GET", "/sync/section-conflicts", {"instructor"}, expect=404
    ),
    "sync_device.resolve": Case(
        "POST",
        "/sync/conflicts/{sync_conflict_id}/resolve",
        SIGNED_IN,
        data={"action": "keep"},
        expect=404,
    ),
}


def setup(db, world):
    world["sync_device_id"] = uuid.uuid4()
    world["sync_conflict_id"] = uuid.uuid4()
