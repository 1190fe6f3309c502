# st87: just enough DER to check credentials before they are sent to the module.
# MIT license; Copyright (c) 2026 st87 developers

# The device has no `cryptography`. This reads DER framing (tag, length, value), turns PEM or a
# hex string into DER, finds the curve of a certificate's or a key's public key, and takes EC
# private keys apart (SEC1, PKCS#8, raw scalar). It checks shape, never signatures: the module
# does the cryptography.

import binascii

try:
    from micropython import const
except ImportError:  # CPython
    from .at import const

_SEQUENCE = const(0x30)
_INTEGER = const(0x02)
_OCTET_STRING = const(0x04)
_OID = const(0x06)
_BIT_STRING = const(0x03)
_CTX0 = const(0xA0)
_CTX1 = const(0xA1)

# Curve numbers as the module's <type> bits 2-3 take them.
SECP256R1 = const(0)
BRAINPOOLP256R1 = const(1)

# OID contents (after tag and length).
_OID_EC_PUBLIC_KEY = b"\x2a\x86\x48\xce\x3d\x02\x01"  # 1.2.840.10045.2.1
_OID_RSA = b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01"  # 1.2.840.113549.1.1.1
_CURVES = (
    ("secp256r1", b"\x2a\x86\x48\xce\x3d\x03\x01\x07", SECP256R1),  # 1.2.840.10045.3.1.7
    ("brainpoolP256r1", b"\x2b\x24\x03\x03\x02\x08\x01\x01\x07", BRAINPOOLP256R1),
    ("secp384r1", b"\x2b\x81\x04\x00\x22", None),  # 1.3.132.0.34: the module refuses it
    ("secp521r1", b"\x2b\x81\x04\x00\x23", None),
)

# Group orders: a private scalar must be in 1..n-1.
_ORDERS = {
    SECP256R1: binascii.unhexlify(
        b"FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551"
    ),
    BRAINPOOLP256R1: binascii.unhexlify(
        b"A9FB57DBA1EEA9BC3E660A909D838D718C397AA3B561A6F7901E0E82974856A7"
    ),
}


def curve_name(curve):
    for name, _, number in _CURVES:
        if number == curve:
            return name
    return "?"


def curve_number(name):
    for n, _, number in _CURVES:
        if n == name and number is not None:
            return number
    raise ValueError("curve must be secp256r1 or brainpoolP256r1")


# One TLV at buf[i:end]: (tag, value_start, value_end). Raises ValueError if it runs past end.
def tlv(buf, i, end):
    if i + 2 > end:
        raise ValueError("truncated DER")
    tag = buf[i]
    n = buf[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        if not 0 < k <= 3 or i + k > end:
            raise ValueError("bad DER length")
        n = 0
        for _ in range(k):
            n = (n << 8) | buf[i]
            i += 1
    if i + n > end:
        raise ValueError("truncated DER")
    return tag, i, i + n


# The children of the constructed value buf[s:e], as a list of (tag, value_start, value_end,
# header_start).
def children(buf, s, e):
    out = []
    while s < e:
        t, vs, ve = tlv(buf, s, e)
        out.append((t, vs, ve, s))
        s = ve
    return out


# The total length an outer DER header declares (header included), or -1 if unreadable.
def declared_length(data):
    try:
        _, vs, ve = tlv(data, 0, 1 << 24)
        return ve
    except (ValueError, IndexError):
        return -1


# True when s (bytes) holds only hex digits.
def is_hex(s):
    for c in s:
        if not (48 <= c <= 57 or 65 <= c <= 70 or 97 <= c <= 102):
            return False
    return True


# A credential as DER bytes, from DER, PEM (str or bytes) or a hex string. Checks that it is
# one DER SEQUENCE whose declared length is the data's length; errors name both lengths.
def to_der(data, what="certificate"):
    if isinstance(data, str):
        data = data.encode()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(what + " must be DER bytes, PEM or hex")
    data = bytes(data)
    if b"-----BEGIN" in data:
        data = _pem_body(data, what)
    elif data and data[0] != _SEQUENCE and is_hex(data.strip()):
        data = _from_hex(data.strip(), what)
    if not data or data[0] != _SEQUENCE:
        raise ValueError(what + " is not DER (no outer SEQUENCE)")
    declared = declared_length(data)
    if declared != len(data):
        raise ValueError(
            "{} is corrupt: its DER header declares {} bytes, the data has {}".format(
                what, declared, len(data)
            )
        )
    return data


def _from_hex(s, what):
    if len(s) % 2:
        # Say what the header declares, so a truncated or padded copy is easy to spot.
        head = binascii.unhexlify(s[:8]) if len(s) >= 8 else b""
        raise ValueError(
            "{} is corrupt: its DER header declares {} bytes, the data has {} hex digits "
            "({} bytes and a half)".format(what, declared_length(head), len(s), len(s) // 2)
        )
    return binascii.unhexlify(s)


def _pem_body(data, what):
    lines = data.replace(b"\r", b"").split(b"\n")
    body = []
    inside = False
    for line in lines:
        if line.startswith(b"-----BEGIN"):
            inside = True
        elif line.startswith(b"-----END"):
            break
        elif inside and line and b":" not in line:  # skip RFC 1421 headers
            body.append(line.strip())
    try:
        return binascii.a2b_base64(b"".join(body))
    except ValueError:  # binascii.Error is a ValueError on CPython
        raise ValueError(what + ": PEM body is not base64")


def _curve_of_oid(buf, s, e):
    oid = bytes(buf[s:e])
    for name, value, number in _CURVES:
        if value == oid:
            return name, number
    return "an unknown curve", None


# (key type, curve name, curve number or None) of the SubjectPublicKeyInfo TLV at buf[s:e].
def spki_curve(buf, s, e):
    alg = children(buf, *tlv(buf, s, e)[1:])[0]
    parts = children(buf, alg[1], alg[2])
    oid = bytes(buf[parts[0][1] : parts[0][2]])
    if oid == _OID_RSA:
        return "RSA", None, None
    if oid != _OID_EC_PUBLIC_KEY or len(parts) < 2 or parts[1][0] != _OID:
        return "unknown", None, None
    name, number = _curve_of_oid(buf, parts[1][1], parts[1][2])
    return "EC", name, number


# The SubjectPublicKeyInfo of an X.509 certificate as (start, end) within der.
def cert_spki(der):
    _, s, e = tlv(der, 0, len(der))
    tbs = children(der, s, e)[0]
    fields = children(der, tbs[1], tbs[2])
    if fields and fields[0][0] == _CTX0:  # explicit version
        fields = fields[1:]
    # serial, signature algorithm, issuer, validity, subject, subjectPublicKeyInfo
    if len(fields) < 6:
        raise ValueError("certificate has no subjectPublicKeyInfo")
    return fields[5][3], fields[5][2]


# The EC public point (BIT STRING contents, 0x04 || X || Y) of the SubjectPublicKeyInfo TLV
# at buf[s:e].
def spki_point(buf, s, e):
    parts = children(buf, *tlv(buf, s, e)[1:])
    return bytes(buf[parts[1][1] + 1 : parts[1][2]])  # skip the unused-bits byte


# An EC private key taken apart: (curve number, form, payload, public point or None) with form
# "sec1" (payload: the DER as given, which the module takes with data_flag 2) or "raw" (payload:
# the 32-byte scalar, data_flag 6). PKCS#8 is unwrapped to its raw scalar. RSA, P-384 and other
# curves are refused with a ValueError that says what the module takes.
def ec_key(key, curve=None):
    if isinstance(key, str):
        key = key.encode()
    key = bytes(key)
    if b"-----BEGIN" in key:
        key = _pem_body(key, "private key")
    elif len(key) == 64 and is_hex(key):
        key = binascii.unhexlify(key)
    if len(key) == 32:
        number = SECP256R1 if curve is None else curve_number(curve)
        return number, "raw", _check_scalar(key, number), None
    der = to_der(key, "private key")
    _, s, e = tlv(der, 0, len(der))
    parts = children(der, s, e)
    if len(parts) < 2 or parts[0][0] != _INTEGER:
        raise ValueError("private key is neither SEC1 nor PKCS#8")
    version = bytes(der[parts[0][1] : parts[0][2]])
    if version == b"\x01" and parts[1][0] == _OCTET_STRING:
        number, point = _sec1(der, parts)
        _check_scalar(bytes(der[parts[1][1] : parts[1][2]]), number)
        return number, "sec1", der, point
    if version == b"\x00" and parts[1][0] == _SEQUENCE and len(parts) >= 3:
        return _pkcs8(der, parts)
    if version == b"\x00" and parts[1][0] == _INTEGER:
        raise ValueError("RSA private keys are refused: the module takes EC keys on " + _TAKES)
    raise ValueError("private key is neither SEC1 nor PKCS#8")


_TAKES = "secp256r1 (P-256) or brainpoolP256r1"


def _sec1(der, parts, outer_curve=None):
    name, number = "unstated", outer_curve
    point = None
    for t, vs, ve, _ in parts[2:]:
        if t == _CTX0:
            inner = tlv(der, vs, ve)
            name, number = _curve_of_oid(der, inner[1], inner[2])
        elif t == _CTX1:
            inner = tlv(der, vs, ve)
            point = bytes(der[inner[1] + 1 : inner[2]])
    if number is None:
        if name == "unstated":
            raise ValueError("SEC1 key does not state its curve")
        raise ValueError("keys on {} are refused: the module takes {}".format(name, _TAKES))
    return number, point


def _pkcs8(der, parts):
    alg = children(der, parts[1][1], parts[1][2])
    oid = bytes(der[alg[0][1] : alg[0][2]])
    if oid == _OID_RSA:
        raise ValueError("RSA private keys are refused: the module takes EC keys on " + _TAKES)
    if oid != _OID_EC_PUBLIC_KEY or len(alg) < 2:
        raise ValueError("PKCS#8 key is not an EC key")
    name, number = _curve_of_oid(der, alg[1][1], alg[1][2])
    if number is None:
        raise ValueError("keys on {} are refused: the module takes {}".format(name, _TAKES))
    inner = children(der, *tlv(der, parts[2][1], parts[2][2])[1:])
    point = _sec1(der, inner, number)[1]
    scalar = _check_scalar(bytes(der[inner[1][1] : inner[1][2]]), number)
    return number, "raw", scalar, point


def _check_scalar(scalar, curve):
    # DER integers may carry a leading zero or be shorter than the field: normalise to 32.
    scalar = scalar.lstrip(b"\x00") if len(scalar) > 32 else scalar
    if len(scalar) > 32:
        raise ValueError("private key scalar is longer than 32 bytes: not a 256-bit curve")
    scalar = bytes(32 - len(scalar)) + scalar
    if scalar == bytes(32) or scalar >= _ORDERS[curve]:
        raise ValueError("private key scalar is out of range for " + curve_name(curve))
    return scalar
