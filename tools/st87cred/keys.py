# Private keys for st87-cred: a thin wrapper around `cryptography`'s key objects, so that the
# curve names, the encodings and the password handling are decided in one place.

import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ._lib import der

# The curves the module takes (application note 4.2: <type> bits 2-3), by the names the
# driver and the AT commands use.
CURVES = {"secp256r1": ec.SECP256R1, "brainpoolP256r1": ec.BrainpoolP256R1}

_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)
KEY_LABELS = ("EC PRIVATE KEY", "PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "RSA PRIVATE KEY")
CERT_LABELS = ("CERTIFICATE",)
CSR_LABELS = ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST")


# The one PEM block of `data` whose label is in `labels`, as PEM bytes; data that is not PEM
# is returned as it is. OpenSSL writes "EC PARAMETERS" before an EC key and bundles hold
# several certificates: the module takes exactly one of each, so pick it or say why not.
def select_pem(data, labels, what):
    if b"-----BEGIN" not in data:
        return data
    blocks = [m.group(0) for m in _PEM.finditer(data) if m.group(1).decode() in labels]
    if not blocks:
        raise ValueError("{} file has no {} PEM block".format(what, labels[0]))
    if len(blocks) > 1:
        raise ValueError(
            "{} file holds {} PEM blocks; the module takes one: split the file".format(
                what, len(blocks)
            )
        )
    return blocks[0]


def is_pem(data):
    return b"-----BEGIN" in data


# "EC secp256r1", "RSA 2048", ... for messages.
def describe(public_key):
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "EC " + public_key.curve.name
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RSA {}".format(public_key.key_size)
    return type(public_key).__name__.lstrip("_")


def spki(public_key):
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class PrivateKey:
    def __init__(self, key):
        self.key = key

    @classmethod
    def generate(cls, curve="secp256r1"):
        return cls(ec.generate_private_key(_curve(curve)()))

    # A key from PEM or DER (SEC1, PKCS#8, PKCS#1), or a raw 32-byte scalar (binary or 64 hex
    # digits, on `curve`) as the module also takes. password: a function returning the
    # password (bytes), called only if the key turns out to be encrypted.
    @classmethod
    def load(cls, data, password=None, curve=None):
        data = select_pem(data, KEY_LABELS, "private key")
        stripped = data.strip()
        if len(stripped) == 64 and re.fullmatch(rb"[0-9a-fA-F]+", stripped):
            data = bytes.fromhex(stripped.decode())
        if len(data) == 32:
            value = int.from_bytes(data, "big")
            try:
                return cls(ec.derive_private_key(value, _curve(curve or "secp256r1")()))
            except ValueError:
                raise ValueError("raw private key is out of range for its curve") from None
        load = serialization.load_pem_private_key if is_pem(data) else _load_der
        try:
            return cls(load(data, None))
        except TypeError:
            # Encrypted (cryptography says so with a TypeError): now ask for the password.
            if password is None:
                raise ValueError("private key is encrypted and no password was given") from None
        except ValueError as exc:
            raise ValueError("cannot read the private key: {}".format(_short(exc))) from None
        try:
            return cls(load(data, password()))
        except ValueError:
            raise ValueError("cannot decrypt the private key: wrong password?") from None

    @property
    def public_key(self):
        return self.key.public_key()

    @property
    def curve(self):
        return self.key.curve.name if isinstance(self.key, ec.EllipticCurvePrivateKey) else None

    def describe(self):
        return describe(self.public_key)

    def public_der(self):
        return spki(self.public_key)

    # SEC1 is what the module takes as is (AT#TLSKEYADD data_flag 2); PKCS#8 is what most
    # other tools want. An encrypted SEC1 key exists only in PEM (OpenSSL's legacy form).
    def export(self, encoding="pem", form="sec1", password=None):
        enc = serialization.Encoding.PEM if encoding == "pem" else serialization.Encoding.DER
        fmt = serialization.PrivateFormat.PKCS8
        if form == "sec1":
            fmt = serialization.PrivateFormat.TraditionalOpenSSL
            if password and encoding == "der":
                raise ValueError("a SEC1 DER key cannot be encrypted: use --pkcs8 or PEM")
        if password:
            protection = serialization.BestAvailableEncryption(password)
        else:
            protection = serialization.NoEncryption()
        return self.key.private_bytes(enc, fmt, protection)


# The bytes to give the driver for a key file: the file itself (lib/st87 reads SEC1, PKCS#8,
# PEM or a raw scalar, and decides the AT#TLSKEYADD form from it), except that an encrypted
# key is decrypted first, to SEC1 DER.
def key_for_driver(data, password=None):
    data = select_pem(data, KEY_LABELS, "private key")
    if b"ENCRYPTED" not in data[:200] and not _encrypted_der(data):
        return data
    return PrivateKey.load(data, password).export("der", "sec1")


def _encrypted_der(data):
    # PKCS#8 EncryptedPrivateKeyInfo is SEQUENCE { SEQUENCE { OID, ... }, OCTET STRING }; a
    # plain PKCS#8 or SEC1 key starts with an INTEGER.
    try:
        _, s, e = der.tlv(data, 0, len(data))
        return data[0] == 0x30 and der.children(data, s, e)[0][0] == 0x30
    except (ValueError, IndexError):
        return False


def _load_der(data, password):
    return serialization.load_der_private_key(data, password)


def _curve(name):
    try:
        return CURVES[name]
    except KeyError:
        raise ValueError("curve must be one of: " + ", ".join(CURVES)) from None


# cryptography's parse errors can be long; the first sentence says enough.
def _short(exc):
    text = str(exc).strip() or type(exc).__name__
    return text.split(". ")[0].splitlines()[0]
