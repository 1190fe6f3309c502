# st87: security profiles in the module's Internal Trusted Storage (ITS).
# MIT license; Copyright (c) 2026 st87 developers

# A security profile <sec_id> holds the credentials one TLS/DTLS socket uses. The ITS keeps
# them as files: one header per profile that holds anything plus one per credential, 10 files
# in all (application note section 3.3). What is written lives in RAM until AT#RESET=1 commits
# it (save()); any other reboot loses it.
#
# Every write is checked here before anything is sent: profile id range, lengths, hex, the
# command line cap, what the profile already holds and the free ITS files, so that a mistake
# is a clear ValueError or ModemError and never a half-written profile.

try:
    from micropython import const
except ImportError:  # CPython
    from .at import const

import binascii
import gc

from .at import field_int
from .errors import ATError, ModemError, ModemRebooted

_ITS_FILES = const(10)
_PSK_MAX = const(32)  # NOTE: mbed TLS, the module's TLS stack, defaults to 32-byte PSKs
_IDENTITY_MAX = const(128)
_CME_NOT_FOUND = const(1302)
_WRITE_MS = const(10000)
_REBOOT_MS = const(5000)

# What the listing calls each credential, by AT#TLSCERTADD <type>.
_CERT_KINDS = ("cert", "ca", "identity")

# The ITS element a plan step fills: an imported or generated private key takes the key slot.
_SLOT = {"generate": "key"}
# A PSK and a private key share one slot: a profile holds one or the other.
_SHARED = {"key": "psk", "psk": "key"}


# One command of a provisioning plan: the command line up to its data (head), the credential
# bytes that follow it as hex (data, or None), and whether they are secret (traces then show
# their length only).
class Step:
    def __init__(self, sec_id, kind, head, data=None, secret=False):
        self.sec_id = sec_id
        self.kind = kind  # "ca", "key", "generate", "cert", "psk", "identity"
        self.head = head
        self.data = data
        self.secret = secret

    def length(self):
        return len(self.head) + (2 * len(self.data) if self.data else 0)

    # The module silently ignores a line over its cap: refuse it here instead.
    def check(self, line_cap):
        if self.length() > line_cap:
            raise ValueError(
                "{} line would be {} characters, over the module's cap of {}".format(
                    self.kind, self.length(), line_cap
                )
            )

    # The whole AT line (bytes, without CR), hex in upper case. For host tools that print or
    # check lines; the driver itself streams the hex instead of building it.
    def line(self):
        if not self.data:
            return self.head
        return self.head + binascii.hexlify(self.data).upper()

    def __repr__(self):
        # Never the data: it may be a key.
        return "<Step {} {} {} bytes>".format(
            self.kind, self.head.decode(), len(self.data) if self.data else 0
        )


# The commands that provision profile sec_id with the given credentials, checked and in the
# order the module needs: CA, private key (imported or generated), client certificate, PSK,
# PSK identity. Nothing is sent; Modem.tls.write() sends a plan and Modem.tls.budget() checks
# it against the ITS. Runs on CPython too (st87-cred uses it).
#   ca, cert: DER, PEM or hex          key: SEC1/PKCS#8 DER, PEM, or a 32-byte raw scalar
#   generate: True to have the module make the key (curve selects it)
#   psk: bytes or hex str              identity: bytes or str
def plan(
    sec_id,
    *,
    ca=None,
    cert=None,
    key=None,
    generate=False,
    curve=None,
    psk=None,
    identity=None,
    sec_ids=(0, 15),
    ca_curves=("secp256r1", "brainpoolP256r1"),
    line_cap=1600,
):
    lo, hi = sec_ids
    if not isinstance(sec_id, int) or not lo <= sec_id <= hi:
        raise ValueError("sec_id must be an int in {}..{}".format(lo, hi))
    if key is not None and generate:
        raise ValueError("import a key or generate one, not both")
    if (psk is None) != (identity is None):
        raise ValueError("a PSK needs its identity, and an identity its PSK")
    if psk is not None and (key is not None or generate):
        raise ValueError("a profile holds a PSK or a private key, not both")
    sid = str(sec_id).encode() + b","
    steps = []
    if ca is not None or key is not None or generate or cert is not None:
        steps = _certs().steps(sec_id, sid, ca, key, generate, curve, cert, ca_curves)

    if psk is not None:
        psk = _as_key(psk)
        steps.append(Step(sec_id, "psk", b"AT#TLSKEYADD=" + sid + b"1,2,4," + _n(psk), psk, True))
        identity = _as_identity(identity)
        steps.append(
            Step(sec_id, "identity", b"AT#TLSCERTADD=" + sid + b"2," + _n(identity), identity)
        )

    for step in steps:
        step.check(line_cap)
    return steps


# The certificate and key code (certs, and der, which it imports), loaded on first use: a
# PSK-only device never holds it in its heap. The heap is collected first, so that the code
# fills the holes garbage leaves rather than split the free end of the heap.
_certs_module = None


def _certs():
    global _certs_module
    if _certs_module is None:
        gc.collect()
        from . import certs

        _certs_module = certs
    return _certs_module


# b"<len>," for a command head.
def _n(data):
    return str(len(data)).encode() + b","


def _ids(steps):
    out = []
    for step in steps:
        if step.sec_id not in out:
            out.append(step.sec_id)
    return out


def _delete_cmd(sec_id, what):
    sid = str(sec_id).encode()
    if what in ("psk", "key"):
        return b"AT#TLSKEYDEL=" + sid
    return b"AT#TLSCERTDEL=" + sid + b"," + str(_CERT_KINDS.index(what)).encode()


class TLS:
    def __init__(self, modem):
        self._m = modem
        # Curves the module's CA parser takes; firmware that also takes P-384 roots may
        # extend this.
        self.ca_curves = ("secp256r1", "brainpoolP256r1")

    def _limits(self):
        return {"sec_ids": self._m.sec_ids, "line_cap": self._m.line_cap}

    def _check_id(self, sec_id):
        lo, hi = self._m.sec_ids
        if not isinstance(sec_id, int) or not lo <= sec_id <= hi:
            raise ValueError("sec_id must be an int in {}..{}".format(lo, hi))

    # --- what the module holds -------------------------------------------------------------

    # Every credential the module lists, as (sec_id, kind, detail) with kind one of "psk",
    # "key", "cert", "ca", "identity"; detail is the rest of the listing line (bytes), for a
    # PSK identity its text. Only the first two fields are relied on: their order past that
    # differs between firmware versions.
    #   #TLSKEYLIST: 0,1,0,0,256        (a PSK)
    #   #TLSCERTLIST: 0,2,Client_identity
    def list(self, sec_id=None):
        suffix = b"" if sec_id is None else b"=" + str(sec_id).encode()
        out = []
        for line in self._m.channel.command(b"AT#TLSKEYLIST" + suffix):
            kind = "psk" if field_int(line, 0, len(line), 1) == 1 else "key"
            out.append((field_int(line, 0, len(line), 0), kind, _rest(line, 2)))
        for line in self._m.channel.command(b"AT#TLSCERTLIST" + suffix):
            t = field_int(line, 0, len(line), 1)
            kind = _CERT_KINDS[t] if 0 <= t < len(_CERT_KINDS) else "cert"
            out.append((field_int(line, 0, len(line), 0), kind, _rest(line, 2)))
        return out

    # ITS files as (used, free), computed the way the module counts them.
    def files(self, listing=None):
        if listing is None:
            listing = self.list()
        profiles = []
        for entry in listing:
            if entry[0] not in profiles:
                profiles.append(entry[0])
        used = len(profiles) + len(listing)
        return used, max(0, _ITS_FILES - used)

    # The PSK identity stored in a profile (bytes), or None. Identities can be read back;
    # keys never can.
    #   AT#TLSCERTADD=0,2 -> "#TLSCERTADD: 0,2,15" then "436C69656E745F6964656E74697479"
    def psk_identity(self, sec_id):
        self._check_id(sec_id)
        try:
            lines = self._m.channel.command(b"AT#TLSCERTADD=" + str(sec_id).encode() + b",2")
        except ATError as e:
            if e.code == _CME_NOT_FOUND:
                return None
            raise
        if len(lines) < 2:
            return None
        return _unhex(lines[1])

    # True when the profile holds a PSK and the given identity.
    def has_psk(self, sec_id, identity):
        identity = _as_identity(identity)
        held = self.list(sec_id)
        if not any(e[1] == "psk" for e in held):
            return False
        return self.psk_identity(sec_id) == identity

    # --- writing ---------------------------------------------------------------------------

    # Radio off while credentials are written: firmware 3.1 refuses writes at CFUN=1 with a
    # bare +CME ERROR. attach() or save() bring it back.
    def _provisioning(self):
        from .modem import PROVISIONING

        self._m._ready()
        self._m.set_cfun(4)
        self._m.state = PROVISIONING

    # Check a plan against what the module holds and return (files needed, files free).
    # Raises ModemError before anything is sent if an element exists already or the ITS has
    # too few free files.
    def budget(self, steps, listing=None):
        if listing is None:
            listing = self.list()
        for sec_id in _ids(steps):
            held = [e[1] for e in listing if e[0] == sec_id]
            for step in steps:
                if step.sec_id != sec_id:
                    continue
                kind = _SLOT.get(step.kind, step.kind)
                if kind in held or _SHARED.get(kind) in held:
                    raise ModemError(
                        "profile {} already holds a {}: delete it first".format(sec_id, kind)
                    )
        need = len(steps) + len([i for i in _ids(steps) if not [e for e in listing if e[0] == i]])
        free = self.files(listing)[1]
        if need > free:
            raise ModemError(
                "ITS full: the plan needs {} files, {} of {} free".format(need, free, _ITS_FILES)
            )
        return need, free

    # Write a plan (see plan()) in its order, radio off. Returns the public key the module
    # printed for an imported or generated key (SubjectPublicKeyInfo DER), else None. If a
    # step fails, the elements this call wrote are deleted again and the error is raised:
    # the profile is left as it was.
    def write(self, steps):
        for step in steps:
            self._check_id(step.sec_id)
            step.check(self._m.line_cap)
        self.budget(steps)
        self._provisioning()

        ch = self._m.channel
        done = []
        public = None
        try:
            for step in steps:
                lines = ch.command(step.head, _WRITE_MS, hexdata=step.data, secret=step.secret)
                done.append(step)
                if step.kind in ("key", "generate"):
                    public = _certs().hex_reply(lines, b"#TLSKEYADD:", 4, "public key")
        except ATError:
            for step in reversed(done):
                self._delete(_delete_cmd(step.sec_id, _SLOT.get(step.kind, step.kind)))
            raise
        return public

    # A plan for profile sec_id with this module's limits (see plan() below for the
    # credentials it takes). budget(steps) says what it needs before write(steps) sends it.
    def plan(self, sec_id, **credentials):
        credentials.setdefault("ca_curves", self.ca_curves)
        return plan(sec_id, **credentials, **self._limits())

    # Store a pre-shared key and its identity in profile sec_id.
    #   key:      the PSK as bytes (or a hex str), 1..32 bytes.
    #   identity: bytes or str, 1..128 bytes.
    # Uncommitted until save().
    def add_psk(self, sec_id, key, identity):
        self.write(plan(sec_id, psk=key, identity=identity, **self._limits()))

    # Store the CA root that authenticates servers (DER, PEM or hex). Its key must be on a
    # curve the module takes (ca_curves).
    def add_ca(self, sec_id, cert):
        self.write(plan(sec_id, ca=cert, ca_curves=self.ca_curves, **self._limits()))

    # Store the client certificate (DER, PEM or hex); its key must match the profile's key.
    def add_cert(self, sec_id, cert):
        self.write(plan(sec_id, cert=cert, **self._limits()))

    # Import an EC private key: SEC1 DER (sent as is), PKCS#8 DER (sent as its raw scalar), a
    # 32-byte raw scalar (curve: "secp256r1" or "brainpoolP256r1"), or PEM of those. Returns
    # the public key (SubjectPublicKeyInfo DER) the module derived from it.
    def import_key(self, sec_id, key, curve=None):
        return self.write(plan(sec_id, key=key, curve=curve, **self._limits()))

    # Have the module generate a key pair in Flash; returns its public key (SPKI DER). The
    # private key never leaves the module; sign_csr() gets a CSR for it.
    def generate_key(self, sec_id, curve="secp256r1"):
        return self.write(plan(sec_id, generate=True, curve=curve, **self._limits()))

    # Have the module sign a CSR with the profile's private key. The module keeps the dummy
    # CSR's subject, puts the profile's public key in and signs it; returns that CSR (DER).
    #   AT#TLSCERTSIGN=0,128,269,<hex> -> "#TLSCERTSIGN: 0,128,<n>" then the CSR in hex
    def sign_csr(self, sec_id, csr):
        self._check_id(sec_id)
        return _certs().sign_csr(self._m, sec_id, csr, _WRITE_MS)

    # Delete from profile sec_id: everything (what=None), or one of "psk"/"key" (the key
    # slot), "cert", "ca", "identity". Missing elements are not an error.
    def delete(self, sec_id, what=None):
        self._check_id(sec_id)
        if what is not None and what not in ("psk", "key") + _CERT_KINDS:
            raise ValueError("what must be None, psk, key, cert, ca or identity")
        self._provisioning()
        if what is None:
            self._delete(_delete_cmd(sec_id, "key"))
            self._delete(b"AT#TLSCERTDEL=" + str(sec_id).encode())
        else:
            self._delete(_delete_cmd(sec_id, what))

    def _delete(self, cmd):
        try:
            self._m.channel.command(cmd, _WRITE_MS)
        except ATError as e:
            if e.code != _CME_NOT_FOUND:
                raise

    # Commit everything written to the ITS: AT#RESET=1 saves and reboots; then wait until the
    # module is ready again (Modem.start). The radio comes back at CFUN=1 by itself.
    def save(self, timeout_ms=30000):
        from .at import ticks_add, ticks_diff, ticks_ms

        m = self._m
        deadline = ticks_add(ticks_ms(), timeout_ms)
        boots = m.boots
        try:
            m.channel.command(b"AT#RESET=1", _REBOOT_MS)
        except ModemRebooted:
            pass

        # The boot URC follows the OK. If noise ate it, start() still syncs.
        until = ticks_add(ticks_ms(), _REBOOT_MS)
        while m.boots == boots and ticks_diff(until, ticks_ms()) > 0:
            m.poll(50)
        m.start(max(1000, ticks_diff(deadline, ticks_ms())))


# The part of an information line after its n-th comma, as bytes (listing details).
def _rest(line, n):
    i = line.find(b":") + 1
    while n:
        j = line.find(b",", i)
        if j < 0:
            return b""
        i = j + 1
        n -= 1
    return bytes(line[i:]).strip()


def _unhex(s):
    try:
        return binascii.unhexlify(bytes(s).strip())
    except ValueError:  # odd length or a non-hex digit (binascii.Error on CPython)
        raise ModemError("module sent a malformed hex line") from None


# A PSK as bytes. A str is taken as hex; its errors name the problem, never the value.
def _as_key(key):
    if isinstance(key, str):
        s = key.encode()
        if len(s) % 2:
            raise ValueError("PSK hex string has an odd number of digits ({})".format(len(s)))
        try:
            key = binascii.unhexlify(s)
        except ValueError:
            raise ValueError("PSK string is not hex") from None
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise ValueError("PSK must be bytes or a hex string")
    if not 0 < len(key) <= _PSK_MAX:
        raise ValueError("PSK must be 1..{} bytes, not {}".format(_PSK_MAX, len(key)))
    return key


def _as_identity(identity):
    if isinstance(identity, str):
        identity = identity.encode()
    if not isinstance(identity, (bytes, bytearray)):
        raise ValueError("PSK identity must be bytes or str")
    if not 0 < len(identity) <= _IDENTITY_MAX:
        raise ValueError(
            "PSK identity must be 1..{} bytes, not {}".format(_IDENTITY_MAX, len(identity))
        )
    return bytes(identity)
