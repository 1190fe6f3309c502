# The UDP and DTLS socket commands (PROTOCOL.md section 5, application note 5.3):
# AT#DTLSCONNECT, AT#IPSENDUDP, and the datagrams that come in.
#
# DatagramCommands is a mixin of Module, like creds.CredentialCommands: its handlers run on the
# module's worker thread and use the module's sockets, network policy, sessions, loss
# injection and reply helpers.
#
# A plain UDP socket (no <sec_id>) needs no connect: each AT#IPSENDUDP names its destination.
# A socket with a <sec_id> must run AT#DTLSCONNECT first; it then sends to that peer only.
# Either way one send is one datagram and one datagram in is one AT#IPREAD frame.

import logging

from . import engine, net
from .atcmd import CmeError, PlainError, hex_payload, ints, send_payload, split_args
from .sockstate import CID, MAX_PAYLOAD, SOCK_CONNECTED, SOCK_CREATED

log = logging.getLogger("st87sim")

# The longest Connection ID AT#DTLSCONNECT takes [model]: RFC 9146 allows 255 bytes; mbed
# TLS's MBEDTLS_SSL_CID_IN_LEN_MAX/OUT_LEN_MAX default to 32.
MAX_CID = 32


def _peer_key(host, port):
    return net.NetPolicy._key(host), port


class DatagramCommands:
    # AT#DTLSCONNECT=<cid>,<sock>,<ip>,<port>[,<cid_len>,<cid_hex>] -> OK after the handshake.
    # AT#DTLSCONNECT? -> "#DTLSCONNECT: <cid>,<sock>,<state>,<cid_negotiated>" per UDP socket,
    # state 1 while the DTLS session is up.
    def _h_dtlsconnect(self, op, args):
        if op == "read":
            for s in self._sockets_by_id():
                if s.proto == "UDP":
                    up = int(s.state == SOCK_CONNECTED)
                    self._info(f"#DTLSCONNECT: {CID},{s.id},{up},{int(s.cid_negotiated)}")
            self._ok()
            return
        if op != "set":
            raise PlainError()
        fields = split_args(args)
        if len(fields) not in (4, 6) or not fields[2]:
            raise CmeError(3)
        cid, sock_id, port = ints([fields[0], fields[1], fields[3]])
        host = fields[2]
        proposed = None
        if len(fields) == 6:
            (cid_len,) = ints(fields[4:5])
            if not 1 <= cid_len <= MAX_CID:
                raise CmeError(3)
            proposed = hex_payload(fields[5], cid_len, 3)
        if not 1 <= port <= 65535:
            raise CmeError(3)
        self._check_stack(cid)
        sock = self._socket(sock_id)
        # Without a security profile there is nothing to run a handshake with.
        if sock.proto != "UDP" or sock.sec_id is None or sock.state != SOCK_CREATED:
            raise CmeError(3)
        ip, real_port = self._connect_target("DTLSCONNECT", host, port)

        creds = self._credentials(sock.sec_id)
        session_key = (sock.sec_id, "udp", ip, real_port)
        record = self._new_record(sock.sec_id, (ip, real_port))("DTLS 1.2")

        conn_box, on_frame, on_closed = self._reader_callbacks(sock, self._net_frame)
        try:
            conn = net.DatagramConnection.open_dtls(
                ip,
                real_port,
                creds=creds,
                server_name=None if net.ip_literal(host) else host,
                timeout_s=min(sock.send_to or 60, 60),
                loss=self._loss,
                on_frame=on_frame,
                on_closed=on_closed,
                record=record,
                session=self.sessions.get(session_key, creds),
                cid=proposed,
                timeouts_ms=self.dtls_timeout_ms,
            )
        except (OSError, engine.HandshakeError, net.Refused) as exc:
            log.warning(
                "DTLS handshake with %s:%d (%s:%d) failed: %s", host, port, ip, real_port, exc
            )
            raise CmeError(2152) from None
        conn_box[0] = conn
        sock.conn = conn
        sock.remote = (ip, real_port)
        sock.peer = _peer_key(host, port)
        sock.state = SOCK_CONNECTED
        sock.cid_negotiated = record.cid_negotiated
        self.sessions.put(session_key, creds, conn.link.session)
        log.info(
            "socket %d: DTLS with %s:%d via %s:%d, %s, %s handshake, %d retransmissions%s",
            sock.id,
            host,
            port,
            ip,
            real_port,
            conn.link.describe(),
            "abbreviated" if record.resumed else "full",
            record.retransmissions,
            f", CID {proposed.hex().upper()} proposed, not negotiated" if proposed else "",
        )
        self._ok()

    # AT#IPSENDUDP=<cid>,<sock>,<ip>,<port>,<rai>,<type>,<text|hex|len>: one datagram.
    def _h_ipsendudp(self, op, args):
        if op != "set":
            raise PlainError()
        # NOTE: the note's transcript has a space after "=" (errata 7); the fields are
        # stripped, so it is accepted.
        fields = split_args(args, 7)
        if len(fields) != 7 or not fields[2]:
            raise CmeError(3)
        cid, sock_id, port, rai, kind = ints(fields[:2] + fields[3:6])
        host = fields[2]
        data, length = send_payload(kind, fields[6])
        # One send is one datagram: a longer one is refused, never cut.
        if not 1 <= length <= MAX_PAYLOAD or not 1 <= port <= 65535 or rai not in (0, 1, 2):
            raise CmeError(3)
        # TODO: <rai> (release assistance: no more data expected, or one reply) is accepted
        # and has no effect on the model's radio state.
        self._check_stack(cid)
        sock = self._socket(sock_id)
        if sock.proto != "UDP":
            raise CmeError(3)
        if sock.sec_id is not None:
            if sock.state != SOCK_CONNECTED:
                raise CmeError(2154)
            if _peer_key(host, port) != sock.peer:
                log.info(
                    "socket %d: DTLS sends go to its peer only, not %s:%d", sock.id, host, port
                )
                raise CmeError(3)
            addr = None
        else:
            addr = self._plain_target(sock, host, port)
        if data is not None:
            self._send_datagram(sock, data, addr)
        else:
            self._expect_raw(
                sock, length, lambda payload: self._send_datagram(sock, payload, addr)
            )

    # Where a plain UDP send goes, with the socket opened on its first send.
    def _plain_target(self, sock, host, port):
        try:
            addr = self.net.target(host, port)
        except net.Refused as exc:
            # NOTE [model]: the real module would just send; the emulator never sends off
            # loopback, and reports the refusal as a socket error.
            log.warning("IPSENDUDP %s:%d refused by the loopback policy: %s", host, port, exc)
            raise CmeError(2154) from None
        if sock.conn is None:
            conn_box, on_frame, on_closed = self._reader_callbacks(sock, self._net_frame)
            conn = net.DatagramConnection.open_plain(
                loss=self._loss, on_frame=on_frame, on_closed=on_closed
            )
            conn_box[0] = conn
            sock.conn = conn
        return addr

    def _send_datagram(self, sock, data, addr):
        try:
            sock.conn.send(data, addr)
        except (OSError, net.Refused) as exc:
            log.warning("socket %d: datagram send failed: %s", sock.id, exc)
            self._info(self._error_line(2154))
            return
        log.info("socket %d: sent a datagram of %d bytes", sock.id, len(data))
        self._ok()

    # Reader thread events, run on the worker: one datagram (for DTLS one record) in.
    # NOTE [model]: a datagram is never split, even one longer than the 1400 bytes a send
    # may carry.
    def _net_frame(self, sock, conn, frame):
        if self._sockets.get(sock.id) is not sock or sock.conn is not conn:
            return  # closed meanwhile
        self._queue_frame(sock, frame)
        log.info("socket %d: received a datagram of %d bytes", sock.id, len(frame))
