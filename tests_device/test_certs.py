# Certificates on the MicroPython unix port, through st87-sim, against openssl s_server with a
# test PKI: server authentication by the imported CA over TLS 1.2 and 1.3, mutual TLS with an
# imported key and with a key generated inside the module (its CSR signed by the module, the
# certificate issued by `st87-cred issue`), and the handshakes that must fail.

import unittest

import support

import st87

SEC = 6  # one profile, emptied before each test: CA + key + cert + header is 4 ITS files


class TestCertificates(support.ProfileTest):
    SEC = SEC

    def _profile(self, ca=True, key=None, cert=None):
        tls = self.modem.tls
        if ca:
            tls.add_ca(SEC, support.pki_file("ca.der"))
        if key is not None:
            public = tls.import_key(SEC, key)
            self.assertEqual(public[:2], b"\x30\x59")  # a P-256 SubjectPublicKeyInfo
        if cert is not None:
            tls.add_cert(SEC, cert)
        tls.save()
        self.modem.attach(timeout_ms=10000)

    def _session(self, port, text=b"certificates both ways"):
        with self.modem.socket(st87.TCP, sec_id=SEC) as sock:
            sock.settimeout(10)
            sock.connect(("127.0.0.1", port))
            sock.write(text + b"\n")
            got = support.recv_line(sock)
        self.assertEqual(got, bytes(reversed(text)) + b"\n")
        self.assertEqual(support.open_sockets(self.modem), [])

    def _fails(self, port):
        sock = self.modem.socket(st87.TCP, sec_id=SEC)
        with self.assertRaises(st87.ATError):
            sock.connect(("127.0.0.1", port))
        self.assertEqual(sock.state, st87.sockets.CLOSED)
        self.assertEqual(support.open_sockets(self.modem), [])

    def test_tls12_server_authenticated_by_the_imported_ca(self):
        self._profile()
        port, self.peer = support.start_cert_peer("1.2")
        self._session(port)

    def test_tls12_mutual_with_imported_key_and_certificate(self):
        self._profile(key=support.pki_file("client.key.der"), cert=support.pki_file("client.der"))
        port, self.peer = support.start_cert_peer("1.2", verify_client=True)
        self._session(port)

    def test_tls13_server_authenticated(self):
        self._profile()
        port, self.peer = support.start_cert_peer("1.3")
        self._session(port)

    def test_mutual_tls_with_a_key_generated_in_the_module(self):
        tls = self.modem.tls
        tls.add_ca(SEC, support.pki_file("ca.der"))
        public = tls.generate_key(SEC)

        # A dummy CSR for the subject; the module puts its own key in and signs it.
        work = support.PEERDIR
        support.cred("csr --subject CN=st87-field-unit-7,O=st87 --out {}/dummy.der".format(work))
        with open(work + "/dummy.der", "rb") as f:
            signed = tls.sign_csr(SEC, f.read())
        self.assertTrue(public in signed)  # the CSR now carries the module's public key
        with open(work + "/signed.der", "wb") as f:
            f.write(signed)
        support.cred(
            "issue --csr {0}/signed.der --ca-cert {1}/ca.pem --ca-key {1}/ca.key.pem "
            "--out {0}/issued.der".format(work, support.PKI)
        )
        with open(work + "/issued.der", "rb") as f:
            tls.add_cert(SEC, f.read())
        tls.save()
        self.modem.attach(timeout_ms=10000)
        port, self.peer = support.start_cert_peer("1.3", verify_client=True)
        self._session(port, b"key made inside the module")

    def test_ca_that_did_not_sign_the_server_certificate(self):
        self._profile()
        port, self.peer = support.start_cert_peer("1.2", cert="rogue")
        self._fails(port)

    def test_expired_server_certificate(self):
        self._profile()
        port, self.peer = support.start_cert_peer("1.2", cert="expired")
        self._fails(port)

    def test_server_asks_for_a_client_certificate_the_profile_lacks(self):
        self._profile()
        port, self.peer = support.start_cert_peer("1.2", verify_client=True)
        self._fails(port)

    def test_tls13_without_a_ca_in_the_profile(self):
        self._profile(ca=False, key=support.pki_file("client.key.der"))
        port, self.peer = support.start_cert_peer("1.3")
        self._fails(port)


if __name__ == "__main__":
    unittest.main()
