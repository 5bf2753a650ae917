"""A real OpenLDAP slapd on loopback, run from a temporary directory (tests and benchmarks)."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import ldap
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.net import PortTaken, free_port, start_on_a_free_port, wait_listening

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "admin-secret"
LIMITED_DN = f"cn=limited,{SUFFIX}"
LIMITED_SIZE = 3
# A bind account the ACLs below restrict: what a test marks with one of these
# businessCategory values is hidden from it, as an ACL change on a real directory would.
READER_DN = f"cn=reader,{SUFFIX}"
READER_PASSWORD = "reader-secret"
HIDDEN_FROM_READER = b"odock-test-hidden"  # the whole entry
MEMBERS_HIDDEN_FROM_READER = b"odock-test-members-hidden"  # a group's member values
LOCK_HIDDEN_FROM_READER = b"odock-test-lock-hidden"  # a person's lock and expiry

# Attributes of FreeIPA and Active Directory that the stock schemas lack, so the presets can
# be exercised against slapd; the OIDs sit under an example private arc.
EXTRA_SCHEMA = """
attributetype ( 1.3.6.1.4.1.55555.1.1 NAME 'nsAccountLock'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.55555.1.2 NAME 'ipaUniqueID'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.55555.1.3 NAME 'objectGUID'
  EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.55555.1.4 NAME 'userAccountControl'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.55555.1.5 NAME 'sAMAccountName'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.55555.1.6 NAME 'legacyName'
  EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.55555.1.7 NAME 'accountExpires'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.55555.1.8 NAME 'lockoutTime'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.55555.1.9 NAME 'krbPrincipalExpiration'
  EQUALITY generalizedTimeMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.24 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.55555.2.1 NAME 'odockTestAccount' SUP top AUXILIARY
  MAY ( nsAccountLock $ ipaUniqueID $ objectGUID $ userAccountControl $ sAMAccountName $
        legacyName $ accountExpires $ lockoutTime $ krbPrincipalExpiration ) )
"""

BASE_LDIF = f"""dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: {LIMITED_DN}
objectClass: person
objectClass: simpleSecurityObject
cn: limited
sn: limited
userPassword: limited-secret

dn: {READER_DN}
objectClass: person
objectClass: simpleSecurityObject
cn: reader
sn: reader
userPassword: {READER_PASSWORD}
"""


@dataclass
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path
    other_ca_file: Path


def _write_ca(directory: Path, name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def make_tls_files(directory: Path) -> TlsFiles:
    """A test CA, a server certificate for 127.0.0.1/localhost, and an unrelated CA."""
    ca_cert, ca_key = _write_ca(directory, "ca")
    _write_ca(directory, "other-ca")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return TlsFiles(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server.pem",
        key_file=directory / "server.key",
        other_ca_file=directory / "other-ca.pem",
    )


def slapd_conf(directory: Path, tls: TlsFiles) -> str:
    schemas = "\n".join(
        f"include {SCHEMA_DIR / name}.schema" for name in ("core", "cosine", "inetorgperson", "nis")
    )
    limit = " ".join(f"size.{kind}={LIMITED_SIZE}" for kind in ("soft", "hard", "prtotal"))
    return f"""{schemas}
include {directory / "extra.schema"}
modulepath {MODULE_DIR}
moduleload back_mdb
moduleload ppolicy
pidfile {directory / "slapd.pid"}
argsfile {directory / "slapd.args"}
TLSCACertificateFile {tls.ca_file}
TLSCertificateFile {tls.cert_file}
TLSCertificateKeyFile {tls.key_file}
sizelimit unlimited
timelimit unlimited

database mdb
maxsize 4294967296
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PASSWORD}
directory {directory / "data"}
index objectClass eq
index entryUUID eq
index uid,mail eq
index modifyTimestamp eq
index entryCSN eq
index member eq
limits dn.exact="{LIMITED_DN}" {limit}
access to filter=(businessCategory={HIDDEN_FROM_READER.decode()})
  by dn.exact="{READER_DN}" none by * read
access to filter=(businessCategory={MEMBERS_HIDDEN_FROM_READER.decode()}) attrs=member,uniqueMember
  by dn.exact="{READER_DN}" none by * read
access to filter=(businessCategory={LOCK_HIDDEN_FROM_READER.decode()})
  attrs=pwdAccountLockedTime,nsAccountLock,shadowExpire,pwdEndTime,accountExpires
  by dn.exact="{READER_DN}" none by * read
access to * by * read
overlay ppolicy
"""


@dataclass
class Slapd:
    """A running slapd: plain and ldaps URLs, the admin bind, and the TLS files."""

    directory: Path
    port: int
    tls_port: int
    tls: TlsFiles
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    def connect(self) -> ldap.ldapobject.LDAPObject:
        """An admin connection for arranging test data."""
        conn = ldap.initialize(self.url)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.simple_bind_s(ROOT_DN, ROOT_PASSWORD)
        return conn

    def start(self) -> None:
        """slapd on its ports (PortTaken if another process holds one)."""
        command = [SLAPD, "-f", str(self.directory / "slapd.conf"), "-h", self._listeners()]
        log_path = self.directory / "slapd.log"
        # -d 0 keeps slapd in the foreground, so it is our child and dies with the fixture.
        self.process = subprocess.Popen(
            [*command, "-d", "0"],
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_listening(self.process, [self.port, self.tls_port], log_path, timeout=20)
        except PortTaken:
            self.process = None
            raise
        self._wait_ready()

    def start_on_free_ports(self) -> None:
        """`start` on ports free now (again on others if one is taken before slapd binds it)."""

        def on(port: int) -> None:
            self.port, self.tls_port = port, free_port()
            self.start()

        start_on_a_free_port(on)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def slapadd(self, ldif_path: Path) -> None:
        """Bulk-load LDIF offline (slapd must be stopped); -q skips checks for speed."""
        subprocess.run(
            [SLAPADD, "-q", "-f", str(self.directory / "slapd.conf"), "-l", str(ldif_path)],
            check=True,
            capture_output=True,
        )

    def _listeners(self) -> str:
        return f"{self.url}/ {self.ldaps_url}/"

    def _wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                log = (self.directory / "slapd.log").read_text(errors="replace")
                raise RuntimeError(f"slapd exited early:\n{log}")
            try:
                self.connect().unbind_s()
                return
            except ldap.SERVER_DOWN:
                time.sleep(0.05)
        raise RuntimeError("slapd did not start")


def prepare_slapd(directory: Path) -> Slapd:
    """Write the configuration, certificates and the base entries; slapd is not started yet."""
    if not Path(SLAPD).exists():
        raise RuntimeError(f"{SLAPD} is missing; install the Debian slapd package")
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "data"
    if data.exists():
        shutil.rmtree(data)
    data.mkdir()
    tls = make_tls_files(directory)
    (directory / "extra.schema").write_text(EXTRA_SCHEMA)
    (directory / "slapd.conf").write_text(slapd_conf(directory, tls))
    slapd = Slapd(directory=directory, port=0, tls_port=0, tls=tls)  # ports: when started
    (directory / "base.ldif").write_text(BASE_LDIF)
    slapd.slapadd(directory / "base.ldif")
    return slapd


def start_slapd(directory: Path) -> Slapd:
    slapd = prepare_slapd(directory)
    slapd.start_on_free_ports()
    return slapd
