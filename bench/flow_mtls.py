# The mutual-TLS provisioning flow with a module-generated key, for the smallest-heap
# bisection: start, add the CA, have the module generate the key pair, have it sign the dummy
# CSR, commit (AT#RESET=1). Issuing the client certificate needs the signed CSR on the host,
# so add_cert and the TLS session are not part of this flow. Prints "mtls: ok".
#   micropython -X heapsize=<n> flow_mtls.py <config.json>
#   config: {"port": "/dev/pts/N", "sec_id": 1, "ca": "<hex DER>", "csr": "<hex DER>"}

import json
import sys
from binascii import unhexlify

import st87
from st87.unix import UART


def main():
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    sec_id = cfg["sec_id"]
    modem = st87.Modem(UART(cfg["port"]))
    modem.start()
    tls = modem.tls
    tls.add_ca(sec_id, unhexlify(cfg["ca"]))
    public = tls.generate_key(sec_id)
    signed = tls.sign_csr(sec_id, unhexlify(cfg["csr"]))
    tls.save()
    print("mtls: ok", len(public), len(signed))


main()
