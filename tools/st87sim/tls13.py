# The module offers three TLS 1.3 suites (note Table 6); the emulator's TLS 1.3 engine is
# Python's ssl on OpenSSL, which offers them only under openssl-tls13.cnf. OpenSSL reads its
# configuration once, at its first use in a process, so OPENSSL_CONF has to be in the
# environment before Python starts: a program that wants the module's exact offer re-executes
# itself through here.

import os
import sys

CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openssl-tls13.cnf")


def environ(base=None):
    env = dict(os.environ if base is None else base)
    env["OPENSSL_CONF"] = CONF
    return env


# Restart this program with OPENSSL_CONF set, unless it already is. Call it first thing in
# main(), before anything has used OpenSSL.
def reexec_with_module_suites():
    if os.environ.get("OPENSSL_CONF") != CONF:
        os.execve(sys.executable, [sys.executable, *sys.argv], environ())
