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


class TLS:
    def __init__(self, modem):
        self._m = modem

    def _check_id(self, sec_id):
        lo, hi = self._m.sec_ids
        if not isinstance(sec_id, int) or not lo <= sec_id <= hi:
            raise ValueError("sec_id must be an int in {}..{}".format(lo, hi))

    def _check_line(self, head, nbytes):
        if len(head) + 2 * nbytes > self._m.line_cap:
            raise ValueError(
                "{} command would be {} characters, over the module's cap of {}".format(
                    head[: head.find(b"=")].decode(), len(head) + 2 * nbytes, self._m.line_cap
                )
            )

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

    # Plan a write of `kinds` into sec_id against what the module holds; raises before
    # anything is sent if an element exists or the ITS has too few free files.
    def _plan(self, sec_id, kinds):
        listing = self.list()
        held = [e[1] for e in listing if e[0] == sec_id]
        for kind in kinds:
            if kind in held or (kind == "psk" and "key" in held):
                raise ModemError(
                    "profile {} already holds a {}: delete it first".format(sec_id, kind)
                )
        need = len(kinds) + (0 if held else 1)
        used, free = self.files(listing)
        if need > free:
            raise ModemError(
                "ITS full: profile {} needs {} files, {} of {} free".format(
                    sec_id, need, free, _ITS_FILES
                )
            )

    # Store a pre-shared key and its identity in profile sec_id.
    #   key:      the PSK as bytes (or a hex str), 1..32 bytes.
    #   identity: bytes or str, 1..128 bytes.
    # Uncommitted until save().
    def add_psk(self, sec_id, key, identity):
        self._check_id(sec_id)
        key = _as_key(key)
        identity = _as_identity(identity)
        sid = str(sec_id).encode()
        key_cmd = b"AT#TLSKEYADD=" + sid + b",1,2,4," + str(len(key)).encode() + b","
        id_cmd = b"AT#TLSCERTADD=" + sid + b",2," + str(len(identity)).encode() + b","
        self._check_line(key_cmd, len(key))
        self._check_line(id_cmd, len(identity))
        self._plan(sec_id, ("psk", "identity"))
        self._provisioning()

        ch = self._m.channel
        ch.command(key_cmd, _WRITE_MS, hexdata=key, secret=True)
        try:
            ch.command(id_cmd, _WRITE_MS, hexdata=identity)
        except ATError:
            # Leave the profile as it was: take back the key written a moment ago.
            self._delete(b"AT#TLSKEYDEL=" + sid)
            raise

    # Delete from profile sec_id: everything (what=None), or one of "psk"/"key" (the key
    # slot), "cert", "ca", "identity". Missing elements are not an error.
    def delete(self, sec_id, what=None):
        self._check_id(sec_id)
        sid = str(sec_id).encode()
        if what is not None and what not in ("psk", "key") + _CERT_KINDS:
            raise ValueError("what must be None, psk, key, cert, ca or identity")
        self._provisioning()
        if what in (None, "psk", "key"):
            self._delete(b"AT#TLSKEYDEL=" + sid)
        if what is None:
            self._delete(b"AT#TLSCERTDEL=" + sid)
        elif what in _CERT_KINDS:
            self._delete(b"AT#TLSCERTDEL=" + sid + b"," + str(_CERT_KINDS.index(what)).encode())

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


def _is_hex(s):
    for c in s:
        if not (48 <= c <= 57 or 65 <= c <= 70 or 97 <= c <= 102):
            return False
    return True


def _unhex(s):
    import binascii

    s = bytes(s).strip()
    if len(s) % 2 or not _is_hex(s):
        raise ModemError("module sent a malformed hex line")
    return binascii.unhexlify(s)


# A PSK as bytes. A str is taken as hex; its errors name the problem, never the value.
def _as_key(key):
    if isinstance(key, str):
        s = key.encode()
        if len(s) % 2:
            raise ValueError("PSK hex string has an odd number of digits ({})".format(len(s)))
        if not _is_hex(s):
            raise ValueError("PSK string is not hex")
        key = _unhex(s)
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
