# `st87-cred check`: what the module will make of a set of credentials, found on the host
# before anything is written. One Finding per check; any "fail" fails the command.

import datetime
import hashlib

from ._lib import der, tls
from .certs import Certificate, module_takes, show_name, show_time
from .keys import PrivateKey, key_for_driver

OK = "ok"
WARN = "warn"
FAIL = "fail"

# Fewer days of validity left than this is worth a warning on a fleet that is rarely visited.
_SOON_DAYS = 30
# Long enough for any certificate: the real cap is compared with the step's length instead,
# so that the length is reported even when it is over.
_NO_CAP = 1 << 30
# The client certificate's key goes through the same check as the driver's plan (any curve
# with a module curve number); the CA's through the firmware's CA curve list.
_CLIENT_CURVES = ("secp256r1", "brainpoolP256r1")
_ANY_CURVE = ("secp256r1", "brainpoolP256r1", "secp384r1", "secp521r1")


class Finding:
    def __init__(self, check, level, message):
        self.check = check
        self.level = level
        self.message = message

    def as_dict(self):
        ok = self.level != FAIL
        return {"check": self.check, "ok": ok, "level": self.level, "message": self.message}

    def __str__(self):
        return "{:<4}  {}".format("FAIL" if self.level == FAIL else self.level, self.message)


class Checker:
    # at: the moment validity is judged at (aware datetime); None: now.
    def __init__(self, at=None, line_cap=1600, sec_id=0, ca_curves=_CLIENT_CURVES):
        self.at = at
        self.now = at or datetime.datetime.now(datetime.timezone.utc)
        self.line_cap = line_cap
        self.sec_id = sec_id
        self.ca_curves = ca_curves
        self.findings = []

    def add(self, check, level, message):
        self.findings.append(Finding(check, level, message))

    @property
    def ok(self):
        return all(f.level != FAIL for f in self.findings)

    # Each argument is a file's bytes or None. password: see PrivateKey.load.
    def run(self, cert=None, key=None, ca=None, server=None, password=None):
        client = self._load("cert", cert, "client certificate")
        if client is not None:
            self._module_key("cert", "client certificate", client, _CLIENT_CURVES)
            self._validity("cert", "client certificate", client)
            self._line("cert", "client certificate", cert=client.der)
        if key is not None:
            self._key(key, client, password)
        root = self._load("ca", ca, "CA certificate")
        if root is not None:
            self._module_key("ca", "CA certificate", root, self.ca_curves)
            self._is_ca(root)
            self._validity("ca", "CA certificate", root)
            self._line("ca", "CA certificate", ca=root.der)
        peer = self._load("server", server, "server certificate")
        if peer is not None:
            self._validity("server", "server certificate", peer)
            if root is not None:
                self._direct_issuer(peer, root)
        return self.findings

    def _load(self, check, data, what):
        if data is None:
            return None
        try:
            return Certificate.load(data, what)
        except ValueError as exc:
            self.add(check + ".read", FAIL, str(exc))
            return None

    def _module_key(self, check, what, cert, curves):
        ok, shown = module_takes(cert.public_der(), curves)
        if ok:
            self.add(check + ".key", OK, "{} key is {}: the module takes it".format(what, shown))
        else:
            self.add(check + ".key", FAIL, "{} key is {}".format(what, shown))

    def _validity(self, check, what, cert):
        now = self.now
        # "days ago" is relative to now, or to --at when one was given.
        at = "" if self.at is None else " at " + show_time(now)
        if now < cert.not_before:
            days = (cert.not_before - now).days
            level, msg = FAIL, "is not yet valid: valid from {} (in {} days{})"
            shown = show_time(cert.not_before)
        elif now > cert.not_after:
            days = (now - cert.not_after).days
            level, msg = FAIL, "expired on {} ({} days ago{})"
            shown = show_time(cert.not_after)
        else:
            days = (cert.not_after - now).days
            level, msg = WARN if days < _SOON_DAYS else OK, "valid until {} ({} days left{})"
            shown = show_time(cert.not_after)
        self.add(check + ".validity", level, what + " " + msg.format(shown, days, at))

    # The AT line that would carry the certificate, measured on the driver's own plan step.
    def _line(self, check, what, **cred):
        try:
            (step,) = tls.plan(self.sec_id, line_cap=_NO_CAP, ca_curves=_ANY_CURVE, **cred)
        except ValueError:
            return  # the key check has said why already
        n = step.length()
        if n > self.line_cap:
            msg = "{} line is {} characters, over the module's cap of {}: it would be ignored"
            self.add(check + ".line", FAIL, msg.format(what, n, self.line_cap))
        else:
            msg = "{} line is {} characters, within the module's cap of {}"
            self.add(check + ".line", OK, msg.format(what, n, self.line_cap))

    def _is_ca(self, root):
        flag = root.is_ca()
        if flag:
            self.add("ca.basic", OK, "CA certificate has basicConstraints CA:TRUE")
        elif flag is None:
            msg = "CA certificate has no basicConstraints (X.509 v1): TLS stacks may refuse it"
            self.add("ca.basic", WARN, msg)
        else:
            self.add("ca.basic", FAIL, "CA certificate has basicConstraints CA:FALSE")

    def _key(self, data, client, password):
        # The driver's own verdict first: it is what decides the AT#TLSKEYADD line.
        try:
            number, form, _, _ = der.ec_key(key_for_driver(data, password))
        except ValueError as exc:
            self.add("key.type", FAIL, str(exc))
            return
        sent = "sent as is" if form == "sec1" else "sent as its 32-byte scalar"
        msg = "private key is EC {} ({}): the module takes it"
        self.add("key.type", OK, msg.format(der.curve_name(number), sent))
        if client is None:
            return
        try:
            key = PrivateKey.load(data, password)
        except ValueError as exc:
            self.add("key.match", FAIL, str(exc))
            return
        if key.public_der() == client.public_der():
            self.add("key.match", OK, "private key matches the client certificate")
        else:
            msg = "private key does not match the client certificate (certificate {}, key {})"
            fps = _fp(client.public_der()), _fp(key.public_der())
            self.add("key.match", FAIL, msg.format(*fps))

    # The module walks no chain: the CA it holds must have signed the server's certificate
    # itself, which takes both the name and the signature.
    def _direct_issuer(self, peer, root):
        if peer.issuer == root.subject:
            msg = "server certificate's issuer is the CA's subject ({})"
            self.add("server.issuer", OK, msg.format(show_name(root.subject)))
        else:
            msg = (
                "server certificate is issued by {}, not by the CA ({}): the module walks no "
                "chain, so the CA must be the server certificate's direct issuer"
            )
            self.add(
                "server.issuer", FAIL, msg.format(show_name(peer.issuer), show_name(root.subject))
            )
        ok, why = peer.signed_by(root)
        if ok:
            msg = "server certificate's signature verifies with the CA key"
            self.add("server.signature", OK, msg)
        else:
            msg = "server certificate's signature does not verify with the CA key: " + why
            self.add("server.signature", FAIL, msg)


# A short fingerprint of a public key, to tell two apart in a message.
def _fp(spki_der):
    return "sha256:" + hashlib.sha256(spki_der).hexdigest()[:16]
