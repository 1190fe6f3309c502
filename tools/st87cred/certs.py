# Certificates and CSRs for st87-cred: wrappers around `cryptography`'s x509 objects, a test
# CA, dummy CSRs for AT#TLSCERTSIGN and issuing client (or server) certificates from CSRs.

import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ._lib import der
from .keys import CERT_LABELS, CSR_LABELS, describe, is_pem, select_pem, spki

# Attribute names accepted in --subject, in both the RFC 4514 form ("CN=dev1,O=Acme") and
# OpenSSL's ("/O=Acme/CN=dev1").
_ATTRS = {
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
    "STREET": NameOID.STREET_ADDRESS,
    "DC": NameOID.DOMAIN_COMPONENT,
    "UID": NameOID.USER_ID,
    "E": NameOID.EMAIL_ADDRESS,
    "EMAILADDRESS": NameOID.EMAIL_ADDRESS,
    "SERIALNUMBER": NameOID.SERIAL_NUMBER,
}

# Clocks disagree: a certificate made now is dated a few minutes back so that a module whose
# network time lags a little still takes it.
_BACKDATE = datetime.timedelta(minutes=5)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


# An x509.Name from "CN=dev1,O=Acme" (RFC 4514: most specific first) or "/O=Acme/CN=dev1"
# (OpenSSL: in encoding order). Raises ValueError naming the bad part.
def parse_subject(text):
    text = text.strip()
    if not text:
        raise ValueError("the subject is empty")
    if text.startswith("/"):
        attrs = []
        for part in text[1:].split("/"):
            key, sep, value = part.partition("=")
            oid = _ATTRS.get(key.strip().upper())
            if not sep or oid is None or not value:
                raise ValueError(
                    "bad subject part {!r} (expected e.g. /O=Acme/CN=dev1)".format(part)
                )
            attrs.append(x509.NameAttribute(oid, value))
        return x509.Name(attrs)
    overrides = dict(_ATTRS)
    overrides["emailAddress"] = NameOID.EMAIL_ADDRESS
    overrides["serialNumber"] = NameOID.SERIAL_NUMBER
    try:
        name = x509.Name.from_rfc4514_string(text, overrides)
    except ValueError as exc:
        raise ValueError("bad subject {!r}: {}".format(text, exc or "not RFC 4514")) from None
    if not list(name):
        raise ValueError("the subject is empty")
    return name


def show_name(name):
    return name.rfc4514_string() or "(empty)"


def show_time(t):
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")


# What certificates and CSRs share: the wrapped x509 object (self._obj), its DER and PEM forms,
# its subject and its public key.
class _Signed:
    def __init__(self, obj):
        self._obj = obj

    @property
    def der(self):
        return self._obj.public_bytes(serialization.Encoding.DER)

    # Each kind's export() gives its own default encoding.
    def _export(self, encoding):
        if encoding == "der":
            return self.der
        return self._obj.public_bytes(serialization.Encoding.PEM)

    @property
    def subject(self):
        return self._obj.subject

    @property
    def public_key(self):
        return self._obj.public_key()

    def public_der(self):
        return spki(self.public_key)


class Certificate(_Signed):
    @property
    def cert(self):
        return self._obj

    def export(self, encoding="pem"):
        return self._export(encoding)

    # From DER, PEM or hex: lib/st87's to_der() checks the DER framing first, so a corrupt
    # copy is reported with its declared and actual lengths, as `at` reports it.
    @classmethod
    def load(cls, data, what="certificate"):
        raw = der.to_der(select_pem(data, CERT_LABELS, what), what)
        try:
            return cls(x509.load_der_x509_certificate(raw))
        except ValueError as exc:
            raise ValueError("{} is not a readable X.509 certificate: {}".format(what, exc))

    @property
    def issuer(self):
        return self.cert.issuer

    @property
    def not_before(self):
        return self.cert.not_valid_before_utc

    @property
    def not_after(self):
        return self.cert.not_valid_after_utc

    def describe_key(self):
        return describe(self.public_key)

    # True/False from basicConstraints, None when the certificate has none (X.509 v1).
    def is_ca(self):
        try:
            return self.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            return None

    # Whether issuer_cert's key verifies this certificate's signature: (True, "") or
    # (False, why). Names are not compared here.
    def signed_by(self, issuer_cert):
        return _verify(
            issuer_cert.public_key,
            self.cert.signature,
            self.cert.tbs_certificate_bytes,
            self.cert.signature_hash_algorithm,
        )


class Request(_Signed):
    @property
    def csr(self):
        return self._obj

    def export(self, encoding="der"):
        return self._export(encoding)

    @classmethod
    def load(cls, data, what="CSR"):
        data = select_pem(data, CSR_LABELS, what)
        try:
            if is_pem(data):
                return cls(x509.load_pem_x509_csr(data))
            return cls(x509.load_der_x509_csr(der.to_der(data, what)))
        except ValueError as exc:
            raise ValueError("{} is not a readable CSR: {}".format(what, exc)) from None

    # Checked by hand rather than with is_signature_valid so that a malformed signature reads
    # as "does not verify" too.
    def signature_ok(self):
        return _verify(
            self.public_key,
            self.csr.signature,
            self.csr.tbs_certrequest_bytes,
            self.csr.signature_hash_algorithm,
        )[0]


def _verify(public_key, signature, data, hash_algorithm):
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(hash_algorithm))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
        else:
            return False, "a {} key is not supported here".format(describe(public_key))
    except InvalidSignature:
        return False, "the signature does not verify"
    except (UnsupportedAlgorithm, ValueError, TypeError) as exc:
        return False, "the signature cannot be checked: {}".format(exc)
    return True, ""


# Whether the module takes this SubjectPublicKeyInfo: (True, "EC secp256r1") or (False, why).
# lib/st87's der module decides, as it does when the driver plans a write.
def module_takes(spki_der, curves=("secp256r1", "brainpoolP256r1")):
    kind, name, _ = der.spki_curve(spki_der, 0, len(spki_der))
    shown = kind if kind != "EC" else "EC " + name
    if kind == "EC" and name in curves:
        return True, shown
    return False, "{} (the module takes EC keys on {} only)".format(shown, " or ".join(curves))


# A self-signed test CA: EC on `curve`, basicConstraints CA (critical, path length 0, since
# the module walks no chain), keyCertSign. Returns its Certificate.
def make_ca(key, cn, days=3650):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = utcnow()
    public = key.public_key
    builder = _builder(
        name, name, public, now - _BACKDATE, now + datetime.timedelta(days=days), ca=True
    ).add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    return Certificate(builder.sign(key.key, hashes.SHA256()))


# A dummy CSR for AT#TLSCERTSIGN: the module keeps only its subject and puts in its own key
# and signature (application note 3.4), so the key that signs it here is thrown away.
def make_csr(subject, key):
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    return Request(builder.sign(key.key, hashes.SHA256()))


# A certificate for the CSR's subject and public key, signed by the CA. Refuses a CSR whose
# signature does not verify (it proves the requester holds the key: for a CSR re-signed by
# the module, that the module holds it), a CA key that is not the CA certificate's, and a
# key the module could not use.
def issue(request, ca_cert, ca_key, days=365, not_before=None, server=False, dns=()):
    if not request.signature_ok():
        raise ValueError("the CSR's signature does not verify: refusing to issue")
    if ca_key.public_der() != ca_cert.public_der():
        raise ValueError("the CA key is not the key of the CA certificate")
    if ca_cert.is_ca() is False:
        raise ValueError("the CA certificate has basicConstraints CA:FALSE: it cannot issue")
    ok, shown = module_takes(request.public_der())
    if not ok:
        raise ValueError("the CSR's key is " + shown)
    if not_before is None:
        not_before = utcnow() - _BACKDATE
    not_after = not_before + datetime.timedelta(days=days)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    public = request.public_key
    builder = (
        _builder(request.subject, ca_cert.subject, public, not_before, not_after, ca=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(_authority_key_id(ca_cert), critical=False)
    )
    if dns:
        names = [x509.DNSName(d) for d in dns]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return Certificate(builder.sign(ca_key.key, hashes.SHA256()))


# A certificate builder with what CA and end-entity certificates share, up to the key usage:
# basicConstraints (critical; a CA's with path length 0) and keyUsage (critical: digital
# signature, plus keyCertSign and cRLSign for a CA). The caller adds the rest, in order.
def _builder(subject, issuer, public, not_before, not_after, *, ca):
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )


def _authority_key_id(ca_cert):
    try:
        ski = ca_cert.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key)
