# `st87-cred provision`: bring one security profile of a module to a wanted set of
# credentials, idempotently: what the profile already holds (as far as the listing shows it)
# is not written again, a profile that holds exactly the wanted credentials is left alone,
# and a profile that holds different ones is only replaced when asked (--force).

import csv
import logging

from ._lib import st87
from .certs import Certificate, Request, issue, make_csr, show_name, show_time
from .errors import explain
from .keys import PrivateKey

log = logging.getLogger(__name__)

# The ITS element each plan step fills (a generated key takes the key slot).
_ELEMENT = {
    "ca": "ca",
    "key": "key",
    "generate": "key",
    "cert": "cert",
    "psk": "psk",
    "identity": "identity",
}
_NAMES = {
    "ca": "CA certificate",
    "key": "private key",
    "cert": "client certificate",
    "psk": "PSK",
    "identity": "PSK identity",
}

PRESENT = "present"
ABSENT = "absent"
CONFLICT = "conflict"


# What the profile should hold. ca, cert: Certificate; key: (bytes for the driver,
# PrivateKey); issuer: (ca Certificate, ca PrivateKey, days) to issue a certificate for a
# generated key; csr_subject: x509.Name for the dummy CSR.
class Wanted:
    def __init__(
        self,
        ca=None,
        cert=None,
        key=None,
        generate=False,
        curve=None,
        psk=None,
        identity=None,
        csr_subject=None,
        issuer=None,
    ):
        self.ca = ca
        self.cert = cert
        self.key = key
        self.generate = generate
        self.curve = curve
        self.psk = psk
        self.identity = identity
        self.csr_subject = csr_subject
        self.issuer = issuer

    def plan_args(self):
        return {
            "ca": self.ca.der if self.ca else None,
            "cert": self.cert.der if self.cert else None,
            "key": self.key[0] if self.key else None,
            "generate": self.generate,
            "curve": self.curve,
            "psk": self.psk,
            "identity": self.identity,
        }


class Provisioner:
    # say: function(str) for progress lines (the text output); the result dict is the rest.
    def __init__(self, modem, sec_id, say=None):
        self.modem = modem
        self.sec_id = sec_id
        self.say = say or (lambda line: None)
        self.issued = None  # the certificate issued for a generated key
        self.signed_csr = None

    def run(self, wanted, save=True, force=False):
        m = self.modem
        sid = self.sec_id
        result = {
            "sec_id": sid,
            "nothing_to_write": False,
            "written": [],
            "skipped": [],
            "saved": False,
            "verified": [],
        }
        try:
            model, firmware, _ = m.identity()
            result["module"] = {"model": model, "firmware": firmware}
            self.say("module: {} {}".format(model, firmware))
        except st87.ModemError as exc:
            log.debug("no identity: %s", exc)

        # Writes turn the radio off (AT+CFUN=4); AT#RESET=1 brings it back, and so must a run
        # that fails or does not save.
        radio = m.cfun
        listing = m.tls.list()
        held = _held(listing, sid)
        used, free = m.tls.files(listing)
        result["held"] = [{"kind": k, "detail": _text(d)} for k, d in held.items()]
        result["its"] = {"used": used, "free": free}
        if held:
            for kind, detail in held.items():
                self.say("profile {} holds: {} ({})".format(sid, kind, _text(detail)))
        else:
            self.say("profile {} is empty".format(sid))
        self.say("ITS: {} files used, {} free".format(used, free))

        steps = m.tls.plan(sid, **wanted.plan_args())
        for step in steps:
            log.debug("plan: %r", step)
        states = [self._compare(step, held, wanted) for step in steps]
        generating = [st for s, st in zip(steps, states) if s.kind == "generate"]
        if generating and generating[0][0] != PRESENT and wanted.issuer and "cert" in held:
            # The certificate for the new key goes where this one is.
            states.append((CONFLICT, "holds a client certificate (a new one would be issued)"))

        if not force and all(state == PRESENT for state, _ in states):
            result["nothing_to_write"] = True
            result["skipped"] = [_ELEMENT[s.kind] for s in steps]
            self.say("nothing to write")
            return True, result

        conflicts = [why for state, why in states if state == CONFLICT and why]
        if not force and any(state == CONFLICT for state, _ in states):
            raise st87.ModemError(
                "profile {} {}: rerun with --force to replace what it holds".format(
                    sid, "; ".join(conflicts)
                )
            )
        cleared = False
        if force and held:
            m.tls.delete(sid)
            cleared = True
            self.say("profile {} cleared (--force)".format(sid))
            listing = m.tls.list()
            todo = steps
        else:
            todo = [s for s, (state, _) in zip(steps, states) if state != PRESENT]
            result["skipped"] = [_ELEMENT[s.kind] for s in steps if s not in todo]
            for kind in result["skipped"]:
                self.say("already there: {}".format(_NAMES[kind]))

        need, free = m.tls.budget(todo, listing)
        if wanted.generate and wanted.issuer:
            need += 1  # the certificate issued for the generated key
            if need > free:
                raise st87.ModemError(
                    "ITS full: the plan needs {} files, {} free".format(need, free)
                )
        self.say("ITS budget: {} files needed, {} free".format(need, free))

        written = result["written"]
        try:
            self._write(todo, wanted, written)
        except (st87.ModemError, ValueError) as exc:
            self._undo(written)
            self._radio_back(radio)
            if cleared:
                note = "; the profile was cleared in RAM only: the saved one returns at reboot"
            elif written:
                note = "; what this run wrote was deleted again"
            else:
                raise
            raise st87.ModemError(explain(exc) + note) from None
        self.say("wrote: " + ", ".join(_NAMES[k] for k in written))

        if save:
            m.tls.save()
            result["saved"] = True
            self.say("saved (AT#RESET=1)")
        else:
            self._radio_back(radio)
            self.say("not saved (--no-save): a reboot without AT#RESET=1 loses it")

        ok = self._verify(steps, wanted, result["verified"])
        self.say("verified: every element is listed" if ok else "verification FAILED")
        return ok, result

    # Whether the profile already holds what this step would write: (state, why).
    def _compare(self, step, held, wanted):
        kind = _ELEMENT[step.kind]
        name = _NAMES[kind]
        other = {"key": "psk", "psk": "key"}.get(kind)
        if other in held:
            return CONFLICT, "holds a {} where the {} goes".format(_NAMES[other], name)
        if kind not in held:
            return ABSENT, ""
        if kind in ("ca", "cert"):
            local = wanted.ca if kind == "ca" else wanted.cert
            same, shown = listing_shows(held[kind], local)
            if same:
                return PRESENT, ""
            return CONFLICT, "holds a different {} ({})".format(name, shown)
        if step.kind == "key":
            # A key cannot be read back. The module refuses a certificate that does not match
            # its key, so a listed certificate equal to ours vouches for the key.
            if wanted.cert is not None and listing_shows(held.get("cert", b""), wanted.cert)[0]:
                return PRESENT, ""
            return CONFLICT, "holds a private key, which cannot be read back to compare"
        if step.kind == "generate":
            if _issued_shown(held.get("cert"), wanted):
                return PRESENT, ""
            return CONFLICT, "holds a private key (a new one would be generated)"
        if kind == "identity":
            got = self.modem.tls.psk_identity(self.sec_id)
            if got == _bytes(wanted.identity):
                return PRESENT, ""
            return CONFLICT, "holds a different PSK identity ({})".format(_text(got or b""))
        # A PSK cannot be read back either: it counts as ours when the identity is, which is
        # why --force exists (a new PSK under the same identity).
        got = self.modem.tls.psk_identity(self.sec_id)
        if got == _bytes(wanted.identity):
            return PRESENT, ""
        # The identity's own conflict says it; no need to say it twice.
        return CONFLICT, "" if got else "holds a PSK with no identity"

    def _write(self, steps, wanted, written):
        m = self.modem
        sid = self.sec_id
        if not steps:
            return
        public = m.tls.write(steps)
        written.extend(_ELEMENT[s.kind] for s in steps)
        kinds = [s.kind for s in steps]
        if "key" in kinds and public is not None and public != wanted.key[1].public_der():
            raise st87.ModemError("the module's public key for the imported key is not the key's")
        if "generate" not in kinds:
            return

        # AT#TLSCERTSIGN: a dummy CSR with the wanted subject, which the module re-signs with
        # the key it generated (application note 3.4).
        dummy = make_csr(wanted.csr_subject, PrivateKey.generate(wanted.curve or "secp256r1"))
        signed = Request.load(m.tls.sign_csr(sid, dummy.der), "signed CSR")
        if signed.public_der() != public or not signed.signature_ok():
            # What the note's own 4.4 transcript shows (erratum 9): no use to a CA.
            raise st87.ModemError("the module's signed CSR does not carry its generated key")
        self.signed_csr = signed
        self.say("module signed a CSR for " + show_name(signed.subject))
        if wanted.issuer is None:
            return
        ca_cert, ca_key, days = wanted.issuer
        self.issued = issue(signed, ca_cert, ca_key, days)
        self.say(
            "issued {} by {}, valid until {}".format(
                show_name(self.issued.subject),
                show_name(ca_cert.subject),
                show_time(self.issued.not_after),
            )
        )
        m.tls.write(m.tls.plan(sid, cert=self.issued.der))
        written.append("cert")

    def _radio_back(self, level):
        if level in (0, 1) and self.modem.cfun != level:
            try:
                self.modem.set_cfun(level)
            except st87.ModemError as exc:
                log.warning("could not restore AT+CFUN=%d: %s", level, exc)

    # Best effort: delete what this run wrote, so a failed run leaves the profile as it was.
    def _undo(self, written):
        for kind in reversed(written):
            try:
                self.modem.tls.delete(self.sec_id, kind)
            except st87.ModemError as exc:
                log.warning("could not delete the %s again: %s", _NAMES[kind], exc)

    def _verify(self, steps, wanted, out):
        listing = self.modem.tls.list(self.sec_id)
        held = _held(listing, self.sec_id)
        kinds = [_ELEMENT[s.kind] for s in steps]
        generated = wanted.generate and _issued_shown(held.get("cert"), wanted)
        if self.issued is not None or generated:
            kinds.append("cert")
        ok = True
        for kind in kinds:
            if kind not in held:
                good, why = False, "not listed"
            elif kind in ("ca", "cert"):
                local = wanted.ca if kind == "ca" else (wanted.cert or self.issued)
                if local is None:
                    good = _issued_shown(held[kind], wanted)
                    why = "listed" if good else "listed with another subject or issuer"
                else:
                    good, why = listing_shows(held[kind], local)
            elif kind == "identity":
                got = self.modem.tls.psk_identity(self.sec_id)
                good = got == _bytes(wanted.identity)
                why = "reads back" if good else "reads back as {}".format(_text(got or b""))
            else:
                good, why = True, "listed"
            out.append({"kind": kind, "ok": good, "message": why})
            self.say("  {} {}: {}".format("ok  " if good else "FAIL", _NAMES[kind], why))
            ok = ok and good
        return ok


# {kind: detail} of one profile from a listing.
def _held(listing, sec_id):
    return {kind: bytes(detail) for sid, kind, detail in listing if sid == sec_id}


def _text(detail):
    return bytes(detail).decode("utf-8", "replace")


def _bytes(identity):
    return identity.encode() if isinstance(identity, str) else bytes(identity)


def _issued_shown(detail, wanted):
    # A certificate for a generated key is ours when its subject is the CSR's subject and its
    # issuer the issuing CA's: dates and key differ from run to run by design.
    if not detail or wanted.csr_subject is None:
        return False
    fields = _fields(detail)
    if not _shown(fields, _name_forms(wanted.csr_subject)):
        return False
    return wanted.issuer is None or _shown(fields, _name_forms(wanted.issuer[0].subject))


# --- reading what the listing shows --------------------------------------------------------
#
# "#TLSCERTLIST: <sec_id>,<type>,<subject>,<issuer>,<not_before>,<not_after>" (PROTOCOL.md
# 4.4), but how names and dates are written, and in which order, differs between firmware
# versions. So the comparison does not rely on positions: it looks for each of the local
# certificate's subject, issuer and dates, in the forms TLS stacks commonly print them, as a
# whole field of the line. Fields are split at commas outside quotes when the firmware quotes
# them (st87-sim does); else a form must be bounded by the line's delimiters, so that
# "CN=dev1" is never found inside "CN=dev10".

# Attribute names as mbed TLS / OpenSSL print them (the rest go by their dotted OID).
_SHORT = {
    "2.5.4.6": ("C",),
    "2.5.4.8": ("ST",),
    "2.5.4.7": ("L",),
    "2.5.4.10": ("O",),
    "2.5.4.11": ("OU",),
    "2.5.4.3": ("CN",),
    "2.5.4.5": ("serialNumber",),
    "1.2.840.113549.1.9.1": ("emailAddress", "E"),
    "0.9.2342.19200300.100.1.25": ("DC",),
}
_DATES = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y%m%d%H%M%SZ",
    "%y%m%d%H%M%SZ",
    "%Y/%m/%d %H:%M:%S",
    "%Y%m%d%H%M%S",
)
_DELIMITERS = ",;|"


# Whether a listing detail shows the certificate: (True, shown) or (False, what differs).
def listing_shows(detail, cert):
    if not isinstance(cert, Certificate):
        return False, "nothing to compare with"
    fields = _fields(detail)
    if not fields[0]:
        return False, "the listing shows no details to compare"
    differ = []
    if not _shown(fields, _name_forms(cert.subject)):
        differ.append("subject")
    if not _shown(fields, _name_forms(cert.issuer)):
        differ.append("issuer")
    for what, t in (("not before", cert.not_before), ("not after", cert.not_after)):
        if not _shown(fields, {_norm(t.strftime(f)) for f in _DATES}):
            differ.append(what)
    if differ:
        return False, "listed: {}; {} differ".format(_text(detail), ", ".join(differ))
    return True, "listed with its subject, issuer and dates"


def _norm(text):
    return "".join(text.split()).lower()


# The detail as normalised fields, and whether they are whole: split at commas outside quotes
# when the firmware quotes, else the whole line as one field (names hold commas, so an
# unquoted line cannot be split).
def _fields(detail):
    text = _text(detail).strip()
    if not text:
        return [], False
    if '"' not in text:
        return [_norm(text)], False
    return [_norm(f) for f in next(csv.reader([text], skipinitialspace=True))], True


# Whether one of the forms is a field (when fields are whole), or sits in the line between
# delimiters.
def _shown(fields, forms):
    fields, whole = fields
    if whole:
        return any(f in forms for f in fields)
    for field in fields:
        for form in forms:
            i = field.find(form)
            while i >= 0:
                end = i + len(form)
                if (i == 0 or field[i - 1] in _DELIMITERS) and (
                    end == len(field) or field[end] in _DELIMITERS
                ):
                    return True
                i = field.find(form, i + 1)
    return False


def _name_forms(name):
    attrs = list(name)
    if not attrs:
        return set()
    forms = {_norm(name.rfc4514_string())}
    for style in (0, 1):
        parts = ["{}={}".format(_key(a, style), a.value) for a in attrs]
        for order in (parts, parts[::-1]):
            forms.add(_norm(",".join(order)))
            forms.add(_norm("/" + "/".join(order)))
    # A firmware that lists only the common name.
    cns = [a.value for a in attrs if a.oid.dotted_string == "2.5.4.3"]
    if len(cns) == 1:
        forms.add(_norm(cns[0]))
    return forms


def _key(attr, style):
    names = _SHORT.get(attr.oid.dotted_string)
    if not names:
        return attr.oid.dotted_string
    return names[min(style, len(names) - 1)]
