"""Settings precedence: defaults < machine-wide file < user file < environment < overrides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from portal.config import (
    DESKTOP,
    SETTINGS,
    TABLES,
    ConfigError,
    load_settings,
    load_table,
    settings_table,
)


@pytest.fixture
def layers(tmp_path, monkeypatch):
    machine = tmp_path / "machine.toml"
    user = tmp_path / "user.toml"
    monkeypatch.setenv("PORTAL_MACHINE_CONFIG", str(machine))
    monkeypatch.setenv("PORTAL_USER_CONFIG", str(user))
    monkeypatch.setenv("PORTAL_DATA_DIR", str(tmp_path / "data"))
    return machine, user


def test_defaults_apply_without_files(layers, tmp_path):
    settings = load_settings()
    assert settings["IDLE_LOGOUT_MINUTES"] == 15
    assert settings["UPDATE_CHECK"] is True
    assert settings["DATABASE_URL"] == f"sqlite:///{tmp_path / 'data' / 'portal.db'}"


def test_each_layer_overrides_the_one_below(layers, monkeypatch):
    machine, user = layers
    machine.write_text(
        '[portal]\nserver_url = "https://portal.campus.example"\nidle_logout_minutes = 5\n'
        "update_check = false\nmax_upload_mb = 7\n"
    )
    user.write_text("idle_logout_minutes = 10\nmax_upload_mb = 8\n")
    monkeypatch.setenv("PORTAL_MAX_UPLOAD_MB", "9")
    settings = load_settings({"PAGE_SIZE": 50})
    assert settings["SERVER_URL"] == "https://portal.campus.example"  # machine file only
    assert settings["UPDATE_CHECK"] is False  # machine file only
    assert settings["IDLE_LOGOUT_MINUTES"] == 10  # user beats machine
    assert settings["MAX_UPLOAD_MB"] == 9  # environment beats user
    assert settings["PAGE_SIZE"] == 50  # explicit override


def test_files_with_a_byte_order_mark_are_read(layers):
    machine, _ = layers
    machine.write_bytes('\ufeffserver_url = "https://x.example"\n'.encode())
    assert load_settings()["SERVER_URL"] == "https://x.example"


def test_unknown_key_is_named(layers):
    machine, _ = layers
    machine.write_text("srever_url = 'typo'\n")
    with pytest.raises(ConfigError, match="unknown setting 'srever_url'"):
        load_settings()


def test_broken_toml_names_the_file(layers):
    machine, _ = layers
    machine.write_text("this is = = not toml")
    with pytest.raises(ConfigError, match=str(machine)):
        load_settings()


def test_bad_values_are_explained(layers, monkeypatch):
    monkeypatch.setenv("PORTAL_IDLE_LOGOUT_MINUTES", "soon")
    with pytest.raises(ConfigError, match="IDLE_LOGOUT_MINUTES must be a whole number"):
        load_settings()
    monkeypatch.setenv("PORTAL_IDLE_LOGOUT_MINUTES", "5")
    monkeypatch.setenv("PORTAL_UPDATE_CHECK", "perhaps")
    with pytest.raises(ConfigError, match="true or false"):
        load_settings()


def test_server_mode_requires_database_and_secret(layers, monkeypatch):
    monkeypatch.setenv("PORTAL_MODE", "server")
    with pytest.raises(ConfigError, match="PORTAL_DATABASE_URL"):
        load_settings()
    monkeypatch.setenv("PORTAL_DATABASE_URL", "postgresql+psycopg://localhost/portal")
    with pytest.raises(ConfigError, match="PORTAL_SECRET_KEY"):
        load_settings()


def test_desktop_secret_key_is_generated_once_and_private(layers, tmp_path):
    first = load_settings()["SECRET_KEY"]
    second = load_settings()["SECRET_KEY"]
    assert first == second and len(first) > 40
    key_file = tmp_path / "data" / "secret_key"
    assert key_file.stat().st_mode & 0o077 == 0


# --- One reader for the portal's keys and the launcher's [desktop] table ------------------------

ROOT = Path(__file__).resolve().parents[2]


def _toml_blocks(markdown: Path) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", markdown.read_text(encoding="utf-8"), re.S)


def test_the_it_guide_file_is_read_as_written(layers):
    """The machine-wide file exactly as installers/README.md shows it: both tables are read."""
    from desktop.settings import DesktopSettings, load_desktop_settings

    machine, _ = layers
    (example,) = _toml_blocks(ROOT / "installers" / "README.md")[:1]
    assert "[desktop]" in example
    machine.write_text(example, encoding="utf-8")
    settings = load_settings()
    assert settings["SERVER_URL"] == "https://portal.campus.example.edu"
    assert settings["ENROLMENT_CODE"] == "ABCD-1234"
    assert settings["UPDATE_CHECK"] is False
    assert settings["IDLE_LOGOUT_MINUTES"] == 10
    assert settings["LOG_LEVEL"] == "INFO"
    assert load_desktop_settings() == DesktopSettings(backups_to_keep=7, daily_backup=True)


def test_the_shipped_example_and_the_readme_example_are_read(layers):
    machine, _ = layers
    from desktop.settings import load_desktop_settings

    machine.write_bytes((ROOT / "installers" / "linux" / "config.toml.example").read_bytes())
    assert load_settings()["IDLE_LOGOUT_MINUTES"] == 10
    assert load_desktop_settings().backups_to_keep == 7
    (readme_example,) = _toml_blocks(ROOT / "README.md")
    machine.write_text(readme_example, encoding="utf-8")
    assert load_settings()["SERVER_URL"] == "https://portal.campus.example"


def test_top_level_portal_keys_next_to_a_desktop_table(layers):
    """The README's own form: portal keys at the top level, launcher keys under [desktop]."""
    from desktop.settings import load_desktop_settings

    machine, user = layers
    machine.write_text("idle_logout_minutes = 4\n\n[desktop]\nbackups_to_keep = 2\n")
    user.write_text("[desktop]\ndaily_backup = false\n")
    assert load_settings()["IDLE_LOGOUT_MINUTES"] == 4
    desktop = load_desktop_settings()
    assert (desktop.backups_to_keep, desktop.daily_backup) == (2, False)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[desktop]\nbackups = 3\n", "unknown setting 'desktop.backups'"),
        ("[portal]\nsrever_url = 'x'\n", "unknown setting 'portal.srever_url'"),
        ("[desktop]\nserver_url = 'x'\n", "'desktop.server_url' belongs in the [portal] table"),
        ("backups_to_keep = 3\n", "'backups_to_keep' belongs in the [desktop] table"),
        ("[deskop]\ndaily_backup = true\n", "unknown table [deskop]"),
        ("page_size = 5\n[portal]\npage_size = 6\n", "'page_size' is set twice"),
        ("[desktop]\nbackups_to_keep = 0\n", "desktop.backups_to_keep must be at least 1"),
        ("[desktop]\nbackups_to_keep = true\n", "desktop.backups_to_keep must be a whole number"),
        ("[desktop]\ndaily_backup = 'often'\n", "desktop.daily_backup must be true or false"),
        ("[portal]\nmode = 'cloud'\n", "portal.mode must be 'desktop' or 'server'"),
        ("server_url = ['a', 'b']\n", "server_url must be a single value"),
    ],
)
def test_a_bad_file_names_the_file_and_the_key(layers, text, message):
    from desktop.problems import SettingsProblem
    from desktop.settings import load_desktop_settings

    _, user = layers
    user.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)) as portal_error:
        load_settings()
    assert str(user) in str(portal_error.value)
    with pytest.raises(SettingsProblem, match=re.escape(message)) as launcher_error:
        load_desktop_settings()
    assert str(user) in launcher_error.value.detail


def test_launcher_settings_come_from_files_only(layers, monkeypatch):
    from desktop.settings import load_desktop_settings

    monkeypatch.setenv("PORTAL_BACKUPS_TO_KEEP", "2")
    assert load_desktop_settings().backups_to_keep == 7


# --- The declaration is the documentation -------------------------------------------------------


def test_the_readme_settings_tables_are_the_declaration():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for table in TABLES:
        assert settings_table(table) in readme, f"README's [{table}] table differs: regenerate it"


def test_every_setting_has_a_default_of_its_type_and_a_unique_name():
    names = [setting.name for setting in SETTINGS]
    assert len(names) == len(set(names))
    for setting in SETTINGS:
        assert type(setting.default) is setting.type, setting.name
        assert setting.table in TABLES and setting.help, setting.name
    assert load_table(DESKTOP) == {
        setting.key: setting.default for setting in SETTINGS if setting.table == DESKTOP
    }


# --- Locked keys: what IT sets machine-wide wins ------------------------------------------------


def test_a_locked_key_beats_the_user_file_the_environment_and_the_command_line(
    layers, monkeypatch, caplog
):
    """The IT guide's own file locks server_url, update_check and idle_logout_minutes: a
    person's file, a PORTAL_* variable and an override are ignored for those, and said so."""
    from desktop.settings import load_desktop_settings

    machine, user = layers
    (example,) = _toml_blocks(ROOT / "installers" / "README.md")[:1]
    assert "[policy]" in example
    machine.write_text(example, encoding="utf-8")
    user.write_text(
        'server_url = "https://evil.example"\nupdate_check = true\nmax_upload_mb = 5\n'
        "[desktop]\ndaily_backup = false\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("PORTAL_IDLE_LOGOUT_MINUTES", "0")
    monkeypatch.setenv("PORTAL_UPDATE_CHECK", "1")
    with caplog.at_level("WARNING", logger="portal.config"):
        settings = load_settings({"IDLE_LOGOUT_MINUTES": 240})
    assert settings["SERVER_URL"] == "https://portal.campus.example.edu"
    assert settings["UPDATE_CHECK"] is False
    assert settings["IDLE_LOGOUT_MINUTES"] == 10
    assert settings["MAX_UPLOAD_MB"] == 5  # not locked: the person's own value
    assert load_desktop_settings().daily_backup is False  # not locked either
    assert settings["LOCKED"] == [
        "enrolment_code",
        "idle_logout_minutes",
        "server_url",
        "update_check",
    ]
    warnings = settings["POLICY_WARNINGS"]
    assert any(w.startswith("server_url is locked by IT") and str(user) in w for w in warnings), (
        warnings
    )
    assert any("update_check" in w and "PORTAL_UPDATE_CHECK" in w for w in warnings)
    assert any("idle_logout_minutes" in w and "PORTAL_IDLE_LOGOUT_MINUTES" in w for w in warnings)
    assert any("idle_logout_minutes" in w and "command line" in w for w in warnings)
    assert not any("max_upload_mb" in w for w in warnings)
    logged = [r.getMessage() for r in caplog.records]
    assert all(w in logged for w in warnings)


def test_the_same_value_as_the_locked_one_is_no_warning(layers, monkeypatch):
    machine, user = layers
    machine.write_text('update_check = false\n[policy]\nlocked = ["update_check"]\n')
    user.write_text("update_check = false\n")
    monkeypatch.setenv("PORTAL_UPDATE_CHECK", "no")
    settings = load_settings({"UPDATE_CHECK": False})
    assert settings["UPDATE_CHECK"] is False
    assert settings["POLICY_WARNINGS"] == []


def test_without_a_lock_the_person_still_wins(layers, monkeypatch):
    machine, user = layers
    machine.write_text('server_url = "https://a.example"\n[policy]\nlocked = ["update_check"]\n')
    user.write_text('server_url = "https://b.example"\n')
    settings = load_settings()
    assert settings["SERVER_URL"] == "https://b.example"
    assert settings["POLICY_WARNINGS"] == []


def test_a_locked_key_the_machine_file_leaves_out_keeps_its_default(layers, monkeypatch):
    machine, user = layers
    machine.write_text('[policy]\nlocked = ["desktop.daily_backup", "update_channel"]\n')
    user.write_text('update_channel = "beta"\n[desktop]\ndaily_backup = false\n')
    from desktop.settings import load_desktop_settings

    settings = load_settings()
    assert settings["UPDATE_CHANNEL"] == "stable"
    assert load_desktop_settings().daily_backup is True
    assert len(settings["POLICY_WARNINGS"]) == 2


def test_a_policy_in_the_user_file_locks_nothing(layers):
    machine, user = layers
    machine.write_text('server_url = "https://a.example"\n')
    user.write_text('server_url = "https://b.example"\n[policy]\nlocked = ["server_url"]\n')
    settings = load_settings()
    assert settings["SERVER_URL"] == "https://b.example"
    assert settings["LOCKED"] == []
    assert "read from the machine-wide file only" in settings["POLICY_WARNINGS"][0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[policy]\nlocked = ["secret_key"]\n', "'secret_key' cannot be locked"),
        ('[policy]\nlocked = ["srever_url"]\n', "unknown setting 'srever_url' in locked"),
        ('[policy]\nlocked = "server_url"\n', "locked must be a list of setting names"),
        ('[policy]\nlock = ["server_url"]\n', "unknown key 'lock'"),
    ],
)
def test_a_bad_policy_names_the_file(layers, text, message):
    machine, _ = layers
    machine.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        load_settings()
    assert str(machine) in str(error.value)


def test_the_it_guide_lists_the_keys_that_may_be_locked():
    from portal.config import lockable_text

    guide = " ".join((ROOT / "installers" / "README.md").read_text(encoding="utf-8").split())
    assert lockable_text() in guide


@pytest.mark.postgres
@pytest.mark.parametrize("prepared", [True, False])
def test_prepared_statements_can_be_turned_off_for_a_transaction_pooler(
    postgres_url, tmp_path, prepared
):
    """Behind PgBouncer in transaction pooling a statement prepared on one server connection is
    missing on the next: `database_prepared_statements = false` stops psycopg from preparing."""
    from portal import create_app
    from portal.extensions import db

    app = create_app(
        {
            "MODE": "server",
            "DATABASE_URL": postgres_url,
            "SECRET_KEY": "x" * 40,
            "DATA_DIR": str(tmp_path),
            "DATABASE_PREPARED_STATEMENTS": prepared,
        }
    )
    with app.app_context(), db.engine.connect() as connection:
        threshold = connection.connection.driver_connection.prepare_threshold
    assert (threshold is not None) is prepared


GROUPS = "ou=groups,dc=campus,dc=example"


@pytest.fixture
def server_layers(layers, monkeypatch):
    monkeypatch.setenv("PORTAL_MODE", "server")
    monkeypatch.setenv("PORTAL_DATABASE_URL", "postgresql+psycopg://portal@/portal")
    monkeypatch.setenv("PORTAL_SECRET_KEY", "k" * 40)
    return layers


def test_campus_sign_in_settings_read_lists_and_tables_from_a_file(server_layers):
    machine, _ = server_layers
    machine.write_text(
        'sign_in_methods = ["ldap", "local"]\n'
        'ldap_url = "ldaps://ldap.campus.example"\n'
        'ldap_user_dn_template = "uid={username},ou=people,dc=campus,dc=example"\n'
        f'ldap_group_roles = {{ admin = "cn=admins,{GROUPS}", instructor = "cn=staff,{GROUPS}" }}\n'
    )
    settings = load_settings()
    assert settings["SIGN_IN_METHODS"] == ["ldap", "local"]
    assert settings["LDAP_GROUP_ROLES"] == {
        "admin": f"cn=admins,{GROUPS}",
        "instructor": f"cn=staff,{GROUPS}",
    }


def test_campus_sign_in_settings_from_the_environment(server_layers, monkeypatch):
    monkeypatch.setenv("PORTAL_SIGN_IN_METHODS", "ldap, local")
    monkeypatch.setenv("PORTAL_LDAP_URL", "ldap://ldap.campus.example")
    monkeypatch.setenv("PORTAL_LDAP_SEARCH_BASE", "ou=people,dc=campus,dc=example")
    monkeypatch.setenv("PORTAL_LDAP_GROUP_ROLES", f'{{ lab_staff = "cn=lab,{GROUPS}" }}')
    monkeypatch.setenv("PORTAL_LDAP_BIND_PASSWORD", "service secret")
    settings = load_settings()
    assert settings["SIGN_IN_METHODS"] == ["ldap", "local"]
    assert settings["LDAP_GROUP_ROLES"] == {"lab_staff": f"cn=lab,{GROUPS}"}
    assert settings["LDAP_BIND_PASSWORD"] == "service secret"  # noqa: S105
    monkeypatch.setenv("PORTAL_SIGN_IN_METHODS", '["local"]')
    assert load_settings()["SIGN_IN_METHODS"] == ["local"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('sign_in_methods = ["local", "kerberos"]', "'kerberos' is not one of 'local', 'ldap'"),
        ("sign_in_methods = []", "must name at least one"),
        ("sign_in_methods = 1", "must be a list of names"),
        ('ldap_group_roles = "admin"', "must be a table"),
        ('sign_in_methods = ["ldap"]\nldap_url = "http://x"', "ldap_url must be ldaps://"),
        (
            'sign_in_methods = ["ldap"]\nldap_url = "ldaps://x"',
            "set ldap_user_dn_template",
        ),
        (
            'sign_in_methods = ["ldap"]\nldap_url = "ldap://ldap.campus.example"\n'
            'ldap_starttls = false\nldap_search_base = "dc=campus"',
            "ldap_starttls = false sends passwords in the clear to ldap.campus.example",
        ),
        (
            'sign_in_methods = ["ldap"]\nldap_url = "ldaps://x"\nldap_search_base = "dc=x"\n'
            'ldap_group_roles = { dean = "cn=deans" }',
            "ldap_group_roles: 'dean' is not a portal role",
        ),
    ],
)
def test_bad_campus_sign_in_settings_are_named(server_layers, line, message):
    machine, _ = server_layers
    machine.write_text(line + "\n")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings()


def test_the_bind_password_is_never_read_from_a_settings_file(server_layers):
    machine, _ = server_layers
    machine.write_text('ldap_bind_password = "in a file everyone reads"\n')
    with pytest.raises(ConfigError, match="unknown setting 'ldap_bind_password'"):
        load_settings()


def test_the_bind_password_file_must_be_private(server_layers, tmp_path):
    machine, _ = server_layers
    secret = tmp_path / "ldap-password"
    secret.write_text("service secret\n")
    secret.chmod(0o644)
    machine.write_text(
        'sign_in_methods = ["ldap"]\nldap_url = "ldaps://x"\n'
        'ldap_search_base = "dc=campus"\n'
        f'ldap_bind_password_file = "{secret}"\n'
    )
    with pytest.raises(ConfigError, match=f"chmod 600 {re.escape(str(secret))}"):
        load_settings()
    secret.chmod(0o600)
    assert load_settings()["LDAP_BIND_PASSWORD"] == "service secret"  # noqa: S105


def test_a_desktop_copy_does_not_offer_the_directory(layers):
    machine, _ = layers
    machine.write_text(
        'sign_in_methods = ["ldap"]\nldap_url = "ldaps://x"\nldap_search_base = "dc=x"\n'
    )
    with pytest.raises(ConfigError, match="ldap is for the central server"):
        load_settings()


def test_the_it_guide_directory_example_is_read_as_written(server_layers):
    machine, _ = server_layers
    (example,) = [b for b in _toml_blocks(ROOT / "installers" / "README.md") if "ldap_url" in b]
    machine.write_text(example.replace("/etc/campus-portal/campus-ca.pem", __file__))
    settings = load_settings()
    assert settings["SIGN_IN_METHODS"] == ["ldap", "local"]
    assert set(settings["LDAP_GROUP_ROLES"]) == {"admin", "instructor"}
