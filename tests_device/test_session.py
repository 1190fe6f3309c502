# The library on the MicroPython unix port against st87-sim over a pty: start, provisioning,
# a real TLS 1.2 PSK session with openssl s_server, and the failure paths.

import unittest

import support

import st87


class TestSession(unittest.TestCase):
    def setUp(self):
        self.uart = support.make_uart()
        self.lines = []
        self.modem = st87.Modem(self.uart, trace=self._trace)
        self.modem.start(timeout_ms=10000)
        self.peer = None

    def tearDown(self):
        if self.peer:
            support.stop_peer(self.peer)
        self.uart.close()

    def _trace(self, direction, data):
        self.lines.append(bytes(data))

    def _provision(self, sec_id, psk, identity):
        tls = self.modem.tls
        tls.delete(sec_id)
        tls.add_psk(sec_id, psk, identity)
        tls.save()
        self.modem.attach(timeout_ms=10000)

    def test_start_and_identity(self):
        self.assertEqual(self.modem.state, st87.modem.READY)
        model, firmware, imei = self.modem.identity()
        self.assertTrue(model)
        self.assertEqual(len(imei), 15)

    def test_psk_session_both_ways(self):
        psk = support.random_psk()
        self._provision(3, psk, "device-3")
        self.assertTrue(self.modem.tls.has_psk(3, "device-3"))
        port, self.peer = support.start_psk_peer(psk, "device-3")
        with self.modem.socket(st87.TCP, sec_id=3) as sock:
            sock.settimeout(10)
            sock.connect(("127.0.0.1", port))
            sock.write(b"unix port says hello\n")
            got = support.recv_line(sock, 64)
        # s_server -rev sends each line back reversed.
        self.assertEqual(got, b"olleh syas trop xinu\n")
        self.assertEqual(support.open_sockets(self.modem), [])
        # The PSK never reached the trace.
        hexpsk = support.hex_of(psk).upper().encode()
        for line in self.lines:
            self.assertFalse(hexpsk in line.upper())

    def test_wrong_psk_fails_and_frees_the_socket(self):
        self._provision(4, support.random_psk(), "device-4")
        port, self.peer = support.start_psk_peer(support.random_psk(), "device-4")
        sock = self.modem.socket(st87.TCP, sec_id=4)
        with self.assertRaises(st87.ATError):
            sock.connect(("127.0.0.1", port))
        self.assertEqual(sock.state, st87.sockets.CLOSED)
        self.assertEqual(support.open_sockets(self.modem), [])

    def test_bad_input_is_refused_before_sending(self):
        tls = self.modem.tls
        before = len(self.lines)
        for bad in ("abc", "zz" * 16, b"", bytes(33)):
            with self.assertRaises(ValueError):
                tls.add_psk(0, bad, "x")
        with self.assertRaises(ValueError):
            tls.add_psk(16, bytes(32), "x")
        with self.assertRaises(ValueError):
            self.modem.socket(st87.TCP, sec_id=-1)
        self.assertEqual(len(self.lines), before)  # nothing was written


if __name__ == "__main__":
    unittest.main()
