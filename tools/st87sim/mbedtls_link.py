# A way into the mbed TLS 2.28 library that python-mbedtls 2.10 bundles, for what its Python
# API lacks: session get/set/save/load (resumption), the server session cache and the "no
# client certificate request" mode. Used by the emulator's resumption (sessions.py) and by
# the DTLS test peer (tests_host/dtls_peer.py).
#
# Calls go through ctypes to the very library instance the extension loaded (found in
# /proc/self/maps), so they act on the same structures. An mbedtls_ssl_context is found
# inside its python-mbedtls buffer object, never assumed: mbed TLS 2.28's struct starts with
# a pointer to its mbedtls_ssl_config, followed by the int handshake state, which Python can
# read. Only the object's own fixed-size memory is scanned, and callers require a single match.

import ctypes
import os
import struct
import threading

_lock = threading.Lock()
_libraries = None


# (libmbedtls, libmbedcrypto) as ctypes.CDLL, the copies python-mbedtls loaded. RuntimeError
# when they cannot be found (not Linux, or an extension linked some other way).
def libraries():
    global _libraries
    with _lock:
        if _libraries is None:
            import mbedtls.tls  # noqa: F401  (loads the extension and its libraries)

            found = {}
            try:
                with open("/proc/self/maps") as maps:
                    for line in maps:
                        path = line.split()[-1]
                        base = os.path.basename(path)
                        for name in ("libmbedtls", "libmbedcrypto"):
                            if base.startswith(name + "-") or base.startswith(name + ".so"):
                                found.setdefault(name, path)
            except OSError:
                pass
            if len(found) != 2:
                raise RuntimeError("the mbed TLS libraries of python-mbedtls are not loaded")
            _libraries = (ctypes.CDLL(found["libmbedtls"]), ctypes.CDLL(found["libmbedcrypto"]))
        return _libraries


# The offsets in a python-mbedtls buffer object (TLSWrappedBuffer) at which an
# mbedtls_ssl_context may start: a pointer for which conf_matches(address) holds, then the
# buffer's handshake state. The object header (16 bytes) is skipped.
def context_offsets(buffer, conf_matches):
    size = type(buffer).__basicsize__
    raw = ctypes.string_at(id(buffer), size)
    state = buffer._handshake_state.value
    out = []
    for off in range(16, size - 12 + 1, 8):
        ptr, got = struct.unpack_from("@Pi", raw, off)
        if got == state and conf_matches(ptr):
            out.append(off)
    return out
