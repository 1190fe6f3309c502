# Wire cost: UART bytes the driver writes for a 64-byte and a 1,024-byte socket send, and for
# provisioning the application note's section 4.3 profile (private key + client certificate,
# DER, from the seed vectors). Prints one JSON line.
#   micropython bench_wire.py <seed_vectors.json>

import json
import sys
from binascii import unhexlify

from fakeuart import Responder

import st87


def started(uart):
    modem = st87.Modem(uart, idle_probe_ms=None)
    modem.start()
    return modem


def send_cost(n):
    uart = Responder(64)
    modem = started(uart)
    sock = modem.socket(st87.TCP, sec_id=0)
    sock.connect(("192.168.21.4", 4433))
    data = bytes(n)
    sock.send(data)  # first send builds and caches its command line
    before = uart.written
    sock.send(data)
    return uart.written - before


def provision_cost(vectors):
    with open(vectors) as f:
        v = json.load(f)
    key = unhexlify(v["private_key_der_4_3"])
    cert = unhexlify(v["client_cert"])
    uart = Responder(64)
    modem = started(uart)
    tls = modem.tls
    steps = tls.plan(1, key=key, cert=cert)
    lines = sum(s.length() + 1 for s in steps)  # the credential command lines, CR included
    before = uart.written
    tls.write(steps)
    return {
        "key_der": len(key),
        "cert_der": len(cert),
        "minimum": 2 * (len(key) + len(cert)),
        "credential_lines": lines,
        "total": uart.written - before,
    }


def main():
    out = {"send": {}, "provision": provision_cost(sys.argv[1])}
    for n in (64, 1024):
        out["send"][str(n)] = send_cost(n)
    print(json.dumps(out))


main()
