# A throwaway PKI for certificate tests, made with `cryptography` in a directory:
#   ca        the trust anchor the module gets (P-256, self-signed)
#   server    127.0.0.1/localhost, issued by ca          expired   the same, out of date
#   other_ca  a CA that signed nothing the server shows  rogue     a server cert it issued
#   client    a client key (SEC1) and certificate issued by ca
# Each name has <name>.pem/.der (certificate) and <name>.key.pem/.key.der (private key) files.

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = datetime.timedelta(days=1)


def _name(cn):
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "st87 tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


class PKI:
    NAMES = ("ca", "other_ca", "server", "expired", "rogue", "client")

    # A directory that already holds a PKI is read back, so separate processes (a device test
    # and the peers it starts) share one.
    def __init__(self, directory, curve=None):
        self.dir = str(directory)
        self.curve = curve or ec.SECP256R1()
        self.keys = {}
        self.certs = {}
        os.makedirs(self.dir, exist_ok=True)
        if os.path.exists(self.path(self.NAMES[-1], key=True, der=True)):
            for name in self.NAMES:
                with open(self.path(name, der=True), "rb") as f:
                    self.certs[name] = x509.load_der_x509_certificate(f.read())
                with open(self.path(name, key=True, der=True), "rb") as f:
                    self.keys[name] = ser.load_der_private_key(f.read(), None)
            return
        now = datetime.datetime.now(datetime.timezone.utc)
        self._ca("ca", "st87 test CA", now)
        self._ca("other_ca", "st87 other CA", now)
        self._leaf("server", "ca", now - DAY, now + 30 * DAY, server=True)
        self._leaf("expired", "ca", now - 30 * DAY, now - DAY, server=True)
        self._leaf("rogue", "other_ca", now - DAY, now + 30 * DAY, server=True)
        self._leaf("client", "ca", now - DAY, now + 30 * DAY, server=False)

    def path(self, name, key=False, der=False):
        return os.path.join(self.dir, name + (".key" if key else "") + (".der" if der else ".pem"))

    def der(self, name):
        return self.certs[name].public_bytes(ser.Encoding.DER)

    def key_der(self, name):
        return self.key_der_of(self.keys[name])

    # Issue a client certificate for a CSR (e.g. one the module signed) with the test CA.
    def issue(self, csr_der, days=30):
        csr = x509.load_der_x509_csr(csr_der)
        assert csr.is_signature_valid
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.certs["ca"].subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - DAY)
            .not_valid_after(now + days * DAY)
            .sign(self.keys["ca"], hashes.SHA256())
        )
        return cert.public_bytes(ser.Encoding.DER)

    def _save(self, name, key, cert):
        self.keys[name] = key
        self.certs[name] = cert
        files = {
            self.path(name): cert.public_bytes(ser.Encoding.PEM),
            self.path(name, der=True): cert.public_bytes(ser.Encoding.DER),
            self.path(name, key=True): key.private_bytes(
                ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL, ser.NoEncryption()
            ),
            self.path(name, key=True, der=True): self.key_der_of(key),
        }
        for path, data in files.items():
            with open(path, "wb") as f:
                f.write(data)

    @staticmethod
    def key_der_of(key):
        return key.private_bytes(
            ser.Encoding.DER, ser.PrivateFormat.TraditionalOpenSSL, ser.NoEncryption()
        )

    def _ca(self, name, cn, now):
        key = ec.generate_private_key(self.curve)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - DAY)
            .not_valid_after(now + 365 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256())
        )
        self._save(name, key, cert)

    def _leaf(self, name, issuer, not_before, not_after, server):
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name("localhost" if server else "st87 device"))
            .issuer_name(self.certs[issuer].subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            alt = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        self._save(name, key, builder.sign(self.keys[issuer], hashes.SHA256()))


# s_server arguments for a certificate server: TLS "1.2" or "1.3", the server certificate
# `name` of the PKI, and -Verify (mutual TLS) against the test CA when verify_client is set.
def server_args(pki, version="1.2", name="server", verify_client=False):
    args = ["-tls1_2" if version == "1.2" else "-tls1_3"]
    args += ["-cert", pki.path(name), "-key", pki.path(name, key=True), "-rev"]
    if verify_client:
        args += ["-Verify", "1", "-CAfile", pki.path("ca")]
    return args
