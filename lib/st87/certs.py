# st87: certificates, EC private keys and CSRs for security profiles.
# MIT license; Copyright (c) 2026 st87 developers

# The part of tls that needs DER: the plan steps for a CA, a client certificate and a private
# key (imported or generated), the public key the module prints for a key, and CSR signing.
# tls imports it when one of those is asked for, so a PSK-only device never loads it nor der
# (their code would take about a third of the heap the PSK session needs). Modem.tls is the
# interface: add_ca, add_cert, import_key, generate_key, sign_csr, plan.

from . import der
from .at import field_int
from .errors import ModemError
from .tls import Step, _n, _unhex


# The CA, key and client certificate steps of tls.plan(), checked, in the order the module
# needs them. sid is the command's b"<sec_id>,".
def steps(sec_id, sid, ca, key, generate, curve, cert, ca_curves):
    out = []
    point = None

    if ca is not None:
        ca = der.to_der(ca, "CA certificate")
        kind, name, _ = der.spki_curve(ca, *der.cert_spki(ca))
        if kind != "EC" or name not in ca_curves:
            raise ValueError(
                "CA certificate has a {} key{}: the module takes {} roots only".format(
                    kind, "" if kind != "EC" else " on " + name, " or ".join(ca_curves)
                )
            )
        out.append(Step(sec_id, "ca", b"AT#TLSCERTADD=" + sid + b"1," + _n(ca)))

    if key is not None:
        number, form, payload, point = der.ec_key(key, curve)
        t = str(128 | (number << 2)).encode()
        flag = b",2,2," if form == "sec1" else b",2,6,"
        out.append(
            Step(sec_id, "key", b"AT#TLSKEYADD=" + sid + t + flag + _n(payload), payload, True)
        )
    elif generate:
        t = str(128 | (der.curve_number(curve or "secp256r1") << 2)).encode()
        out.append(Step(sec_id, "generate", b"AT#TLSKEYADD=" + sid + t + b",2,3,32"))

    if cert is not None:
        cert = der.to_der(cert, "client certificate")
        s, e = der.cert_spki(cert)
        kind, name, number = der.spki_curve(cert, s, e)
        if number is None:
            raise ValueError(
                "client certificate key is {} {}: not one the module takes".format(
                    kind, name or ""
                )
            )
        if point is not None and der.spki_point(cert, s, e) != point:
            raise ValueError("private key and client certificate do not match")
        out.append(Step(sec_id, "cert", b"AT#TLSCERTADD=" + sid + b"0," + _n(cert)))

    # The certificates' own data: attached after the checks so errors stay short.
    for step in out:
        if step.kind == "ca":
            step.data = ca
        elif step.kind == "cert":
            step.data = cert
    return out


# The hex line that follows an information line giving its byte count in field `n`:
#   #TLSKEYADD: 0,130,2,2,91            (the public key, count in field 4)
#   3059301306072A8648CE3D0201...
def hex_reply(lines, prefix, n, what):
    count = -1
    for line in lines:
        if line.startswith(prefix):
            count = field_int(line, 0, len(line), n)
        elif count > 0:
            data = _unhex(line)
            if len(data) != count:
                raise ModemError(what + " length differs from the module's count")
            return data
    return None


# Have the module sign a CSR with profile sec_id's private key (see TLS.sign_csr), waiting
# up to timeout_ms.
#   AT#TLSCERTSIGN=0,128,269,<hex> -> "#TLSCERTSIGN: 0,128,<n>" then the CSR in hex
def sign_csr(modem, sec_id, csr, timeout_ms):
    csr = der.to_der(csr, "CSR")
    head = b"AT#TLSCERTSIGN=" + str(sec_id).encode() + b",128," + str(len(csr)).encode()
    head += b","
    if len(head) + 2 * len(csr) > modem.line_cap:
        raise ValueError("CSR line would be over the module's cap")
    lines = modem.channel.command(head, timeout_ms, hexdata=csr)
    signed = hex_reply(lines, b"#TLSCERTSIGN:", 2, "signed CSR")
    if signed is None:
        raise ModemError("AT#TLSCERTSIGN returned no CSR")
    return der.to_der(signed, "signed CSR")
