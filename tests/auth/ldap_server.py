"""A real OpenLDAP `slapd` (Debian's package) with a small campus directory made by the test:
people, groups, one locked account; an ldap:// listener (StartTLS) and an ldaps:// one, both
with a certificate from a test certificate authority."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from ldap3 import MODIFY_ADD, MODIFY_DELETE, Connection, Server

from tests.conftest import unavailable

SLAPD = Path("/usr/sbin/slapd")
SLAPADD = Path("/usr/sbin/slapadd")
MODULES = Path("/usr/lib/ldap")
SCHEMAS = Path("/etc/ldap/schema")
SUFFIX = "dc=campus,dc=example"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "root-secret-for-tests"  # noqa: S105
READER_DN = f"cn=portal-reader,{SUFFIX}"
POLICY_DN = f"cn=default-policy,{SUFFIX}"
READER_PASSWORD = "reader-secret-for-tests"  # noqa: S105
PASSWORDS = {  # uid: password (the directory stores them salted, as slappasswd would)
    "ada": "Analytical-Engine-1843",
    "grace": "Compiler-A0-1952",
    "alan": "Enigma-Bombe-1940",
    "linus": "Kernel-Release-1991",
    "mallory": "Locked-Out-2026",
}
NAMES = {
    "ada": "Ada Lovelace",
    "grace": "Grace Hopper",
    "alan": "Alan Turing",
    "linus": "Linus Torvalds",
    "mallory": "Mallory Locked",
}
GROUP_MEMBERS = {  # cn: uids
    "portal-admins": ["grace"],
    "teaching-staff": ["grace", "alan"],
    "students": ["ada", "mallory"],
}


def person_dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


def group_dn(cn: str) -> str:
    return f"cn={cn},{GROUPS}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _seed() -> str:
    entries = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: campus\n"
        "o: Campus University\n",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n",
        f"dn: {POLICY_DN}\nobjectClass: device\nobjectClass: pwdPolicy\ncn: default-policy\n"
        "pwdAttribute: userPassword\npwdLockout: TRUE\n",
        f"dn: {READER_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
        f"cn: portal-reader\nuserPassword: {READER_PASSWORD}\n",
    ]
    for uid, password in PASSWORDS.items():
        given, family = NAMES[uid].split()
        entry = (
            f"dn: {person_dn(uid)}\nobjectClass: inetOrgPerson\nuid: {uid}\n"
            f"cn: {NAMES[uid]}\nsn: {family}\ngivenName: {given}\n"
            f"displayName: {NAMES[uid]}\nmail: {uid}@campus.example\nuserPassword: {password}\n"
        )
        if uid == "mallory":  # locked for good by the password policy
            entry += "pwdAccountLockedTime: 000001010000Z\n"
        entries.append(entry)
    for cn, uids in GROUP_MEMBERS.items():
        members = "".join(f"member: {person_dn(uid)}\n" for uid in uids)
        entries.append(f"dn: {group_dn(cn)}\nobjectClass: groupOfNames\ncn: {cn}\n{members}")
    return "\n".join(entries)


def _config(folder: Path, tls: dict[str, Path]) -> str:
    schemas = "".join(
        f"include {SCHEMAS / name}.schema\n" for name in ("core", "cosine", "inetorgperson")
    )
    return (
        f"{schemas}"
        f"modulepath {MODULES}\nmoduleload back_mdb\nmoduleload ppolicy\n"
        f"pidfile {folder / 'slapd.pid'}\n"
        f"TLSCACertificateFile {tls['ca']}\nTLSCertificateFile {tls['cert']}\n"
        f"TLSCertificateKeyFile {tls['key']}\n"
        "database mdb\n"
        f"suffix {SUFFIX}\nrootdn {ROOT_DN}\nrootpw {ROOT_PASSWORD}\n"
        f"directory {folder / 'data'}\nmaxsize 10485760\n"
        f"overlay ppolicy\nppolicy_default {POLICY_DN}\n"
        "access to attrs=userPassword by anonymous auth by * none\n"
        "access to * by users read by * none\n"
    )


@dataclass
class Directory:
    """The running directory: its two URLs, the CA that signed its certificate, and a way to
    change it as the campus IT would."""

    ldap_url: str
    ldaps_url: str
    ca_file: Path
    folder: Path

    def admin(self) -> Connection:
        return Connection(
            Server(self.ldap_url), ROOT_DN, ROOT_PASSWORD, auto_bind=True, raise_exceptions=True
        )

    def add_to_group(self, cn: str, uid: str) -> None:
        with self.admin() as connection:
            connection.modify(group_dn(cn), {"member": [(MODIFY_ADD, [person_dn(uid)])]})

    def remove_from_group(self, cn: str, uid: str) -> None:
        with self.admin() as connection:
            connection.modify(group_dn(cn), {"member": [(MODIFY_DELETE, [person_dn(uid)])]})


def start_directory(folder: Path) -> Iterator[Directory]:
    if not SLAPD.exists():
        unavailable("OpenLDAP's slapd is not installed (Debian package slapd: make system-deps)")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir()
    authority = trustme.CA(organization_name="Campus University Test CA")
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    tls = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    authority.cert_pem.write_to_path(str(tls["ca"]))
    certificate.cert_chain_pems[0].write_to_path(str(tls["cert"]))
    certificate.private_key_pem.write_to_path(str(tls["key"]))
    tls["key"].chmod(0o600)
    config = folder / "slapd.conf"
    config.write_text(_config(folder, tls))
    seed = folder / "seed.ldif"
    seed.write_text(_seed())
    subprocess.run(
        [SLAPADD, "-q", "-f", config, "-l", seed], check=True, capture_output=True, timeout=30
    )
    plain, secure = _free_port(), _free_port()
    urls = f"ldap://127.0.0.1:{plain}/ ldaps://127.0.0.1:{secure}/"
    log = (folder / "slapd.log").open("wb")
    # -d 0: in the foreground (this test's own process), logging nothing but errors.
    process = subprocess.Popen(
        [SLAPD, "-d", "0", "-f", config, "-h", urls], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        for port in (plain, secure):
            _wait_for_port(port, process, folder / "slapd.log")
        yield Directory(
            ldap_url=f"ldap://127.0.0.1:{plain}",
            ldaps_url=f"ldaps://127.0.0.1:{secure}",
            ca_file=tls["ca"],
            folder=folder,
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"slapd exited {process.returncode}: {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return
        except OSError:
            time.sleep(0.05)  # polling for the port to open, not waiting a fixed time
    pytest.fail(f"slapd did not listen on {port} in 30 s: {log.read_text()}")
