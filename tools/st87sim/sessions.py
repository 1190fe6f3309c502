# TLS/DTLS 1.2 session resumption for the mbed TLS engines: take the session out of a finished
# handshake, keep it per (security profile, transport, server), and offer it on the next
# connect of the same profile to the same server (PROTOCOL.md section 5, note 5.1).
#
# NOTE: python-mbedtls 2.10.1 has no session API: its TLSSession class has no methods and
# nothing calls mbedtls_ssl_get_session/set_session (Synss/python-mbedtls issue #48, open).
# The mbed TLS 2.28 library it bundles does export them, with mbedtls_ssl_session_save/load.
# So this file calls them through mbedtls_link, on the very library the extension loaded,
# with the address of the mbedtls_ssl_context inside the extension's buffer object: its
# configuration pointer must point inside the configuration object the context holds.
# Exactly one place in the buffer object must match after a handshake, or resumption is
# switched off for the process; nothing is ever dereferenced before that check.
#
# Sessions live in RAM, with the Module (they survive AT#RESET and power_cycle, as sessions
# kept in the ITS would), and never in the committed credential file: they hold the master
# secret. A session is kept together with the credentials it was made with and is only
# offered while the profile still holds exactly those, and writing or deleting any credential
# of a profile forgets that profile's sessions.

import ctypes
import gc
import logging
import threading

from .mbedtls_link import context_offsets, libraries

log = logging.getLogger("st87sim.engine")

_STATE_OVER = 16  # MBEDTLS_SSL_HANDSHAKE_OVER, the state after a handshake
_SESSION_BYTES = 1024  # room for a struct mbedtls_ssl_session (160 bytes on 2.28/x86-64)
_SAVE_BYTES = 16384  # a serialised session holds the server's certificate

_lock = threading.Lock()
_bridge = None  # _Bridge, or False once it is known not to work


class _Bridge:
    def __init__(self, lib):
        self.lib = lib
        for name in (
            "mbedtls_ssl_get_session",
            "mbedtls_ssl_set_session",
            "mbedtls_ssl_session_save",
            "mbedtls_ssl_session_load",
        ):
            getattr(lib, name).restype = ctypes.c_int
        lib.mbedtls_ssl_session_init.restype = None
        lib.mbedtls_ssl_session_free.restype = None
        self.offset = None  # of the mbedtls_ssl_context in the buffer object, once found

    # The address of the buffer's mbedtls_ssl_context, or None when it cannot be told.
    def context(self, buf, after_handshake):
        if after_handshake and buf._handshake_state.value != _STATE_OVER:
            return None
        conf = _configuration(buf)
        if conf is None:
            return None
        lo, hi = id(conf), id(conf) + type(conf).__basicsize__
        found = context_offsets(buf, lambda ptr: lo <= ptr < hi)
        if self.offset is None:
            if not after_handshake:
                return None  # state 0 before a handshake is too weak a check
            if len(found) != 1:
                log.info("session resumption off: no unique mbed TLS context (%s)", found)
                return None
            self.offset = found[0]
        elif self.offset not in found:
            return None
        return id(buf) + self.offset


# The extension's mbed TLS configuration object that the buffer's context holds.
def _configuration(buf):
    for ctx in gc.get_referents(buf):
        if type(ctx).__name__ in ("ClientContext", "ServerContext"):
            for conf in gc.get_referents(ctx):
                if type(conf).__name__ == "MbedTLSConfiguration":
                    return conf
    return None


def _get_bridge():
    global _bridge
    with _lock:
        if _bridge is None:
            _bridge = False
            try:
                _bridge = _Bridge(libraries()[0])
            except (RuntimeError, OSError, AttributeError) as exc:
                log.info("session resumption off: %s", exc)
        return _bridge or None


# use(lib, ssl, session) with buf's mbedtls_ssl_context (after or before its handshake) and
# a fresh mbedtls_ssl_session, freed afterwards; `missing` when the bridge or context is not
# there.
def _with_session(buf, after_handshake, missing, use):
    bridge = _get_bridge()
    ssl = bridge.context(buf, after_handshake=after_handshake) if bridge else None
    if ssl is None:
        return missing
    lib = bridge.lib
    session = ctypes.create_string_buffer(_SESSION_BYTES)
    lib.mbedtls_ssl_session_init(session)
    try:
        return use(lib, ctypes.c_void_p(ssl), session)
    finally:
        lib.mbedtls_ssl_session_free(session)


# The session of a finished handshake as bytes (mbedtls_ssl_session_save), or None.
def save(buf):
    def use(lib, ssl, session):
        if lib.mbedtls_ssl_get_session(ssl, session) != 0:
            return None
        out = ctypes.create_string_buffer(_SAVE_BYTES)
        olen = ctypes.c_size_t()
        ret = lib.mbedtls_ssl_session_save(session, out, _SAVE_BYTES, ctypes.byref(olen))
        return out.raw[: olen.value] if ret == 0 else None

    return _with_session(buf, True, None, use)


# Put a saved session into a fresh client buffer, before its handshake; True when it will be
# offered.
def offer(buf, blob):
    def use(lib, ssl, session):
        if lib.mbedtls_ssl_session_load(session, blob, len(blob)) != 0:
            return False
        return lib.mbedtls_ssl_set_session(ssl, session) == 0

    return _with_session(buf, False, False, use)


class SessionCache:
    def __init__(self):
        self._sessions = {}  # (sec_id, transport, ip, port) -> (credentials, blob)

    def get(self, key, creds):
        kept = self._sessions.get(key)
        if kept is None:
            return None
        if kept[0] != creds:
            # The profile changed behind our back (a reboot dropped uncommitted writes).
            del self._sessions[key]
            return None
        return kept[1]

    def put(self, key, creds, blob):
        if blob:
            self._sessions[key] = (creds, blob)

    def forget(self, sec_id):
        for key in [k for k in self._sessions if k[0] == sec_id]:
            del self._sessions[key]
            log.info("profile %d: kept session for %s:%d forgotten", sec_id, key[2], key[3])

    def keys(self):
        return list(self._sessions)

    def __len__(self):
        return len(self._sessions)
