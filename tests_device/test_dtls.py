# DTLS 1.2 over UDP on the MicroPython unix port, through st87-sim, against a python-mbedtls
# DTLS peer: PSK with the note's Connection ID, ECDHE-ECDSA with mutual authentication, and
# datagrams that keep their boundaries.

import unittest

import support

import st87

SEC = 7


class TestDTLS(support.ProfileTest):
    SEC = SEC

    def _exchange(self, port, datagrams, cid=None):
        with self.modem.socket(st87.UDP, sec_id=SEC) as sock:
            sock.settimeout(15)
            sock.connect(("127.0.0.1", port), cid=cid)
            for d in datagrams:
                self.assertEqual(sock.send(d), len(d))
                self.assertEqual(sock.recv(1500), bytes(reversed(d)))
            negotiated = sock.cid_negotiated
        self.assertEqual(support.open_sockets(self.modem), [])
        return negotiated

    def test_psk_with_the_notes_connection_id(self):
        psk = support.random_psk()
        self.modem.tls.add_psk(SEC, psk, "dtls-device")
        self.modem.attach(timeout_ms=10000)
        port, self.peer = support.start_dtls_peer(psk, "dtls-device")
        cid = b"\xaa\xbb\xcc\xdd\x01"
        negotiated = self._exchange(port, [b"ST87M_NBIOT_DTLS_test", b"a\r\nOK\r\n"], cid)
        self.assertTrue(negotiated in (True, False))  # reported, whichever it was

    def test_ecdhe_ecdsa_mutual(self):
        tls = self.modem.tls
        tls.add_ca(SEC, support.pki_file("ca.der"))
        tls.import_key(SEC, support.pki_file("client.key.der"))
        tls.add_cert(SEC, support.pki_file("client.der"))
        self.modem.attach(timeout_ms=10000)
        port, self.peer = support.start_dtls_peer(verify_client=True)
        self._exchange(port, [b"certificates over DTLS"])

    def test_datagram_larger_than_one_send_is_refused(self):
        psk = support.random_psk()
        self.modem.tls.add_psk(SEC, psk, "dtls-device")
        self.modem.attach(timeout_ms=10000)
        port, self.peer = support.start_dtls_peer(psk, "dtls-device")
        with self.modem.socket(st87.UDP, sec_id=SEC) as sock:
            sock.connect(("127.0.0.1", port))
            with self.assertRaises(ValueError):
                sock.send(bytes(1401))
            self.assertEqual(sock.send(bytes(1400)), 1400)
            self.assertEqual(len(sock.recv(1500)), 1400)


if __name__ == "__main__":
    unittest.main()
