# What the emulator saw of each TLS/DTLS handshake, for tests and logs: Module.handshakes holds
# one Handshake per attempt that reached the network, in order.
#
# Tally watches the handshake's bytes as they go out and come in (it never changes them): it
# counts datagrams, records and flights, reads the extension lists of the two hellos, and tells
# an abbreviated (resumed) handshake from a full one by who sends ChangeCipherSpec first: in a
# full TLS/DTLS 1.2 handshake the client does, in an abbreviated one the server does (RFC 5246
# 7.3, RFC 5077 3.1). That holds with session IDs and with tickets, and needs no library help.

import dataclasses
import struct
import time

# Record content types and handshake message types (RFC 5246, RFC 6347).
_CCS = 20
_HANDSHAKE = 22
_CLIENT_HELLO = 1
_SERVER_HELLO = 2

_TLS_HEADER = 5  # type, version, length
_DTLS_HEADER = 13  # type, version, epoch, sequence number (6), length
_TLS_HS_HEADER = 4  # msg_type, length (3)
_DTLS_HS_HEADER = 12  # msg_type, length, message_seq, fragment_offset, fragment_length

# Extension types a Connection ID negotiation would show: 54 (RFC 9146), 53 (the drafts'
# allocation, deprecated by it) and 254 (the placeholder mbed TLS 2.x's experimental code
# sends, MBEDTLS_TLS_EXT_CID).
CID_EXTENSIONS = frozenset((53, 54, 254))


@dataclasses.dataclass
class Handshake:
    protocol: str  # "TLS 1.2", "TLS 1.3" or "DTLS 1.2"
    sec_id: int
    peer: tuple  # (ip, port) the emulator really talked to, after routes
    ok: bool = False
    reason: str | None = None  # why it failed; never holds a secret
    cipher: str | None = None
    offered_session: bool = False  # a kept session went out in the ClientHello
    resumed: bool = False  # the server took it: an abbreviated handshake
    cid_proposed: bytes | None = None  # what AT#DTLSCONNECT asked for
    cid_negotiated: bool = False
    datagrams_sent: int = 0  # DTLS: datagrams handed to the network, lost ones included
    datagrams_received: int = 0  # DTLS: datagrams that arrived (not the lost ones)
    dropped: int = 0  # datagrams the loss injection took, both directions
    records_sent: int = 0
    records_received: int = 0
    flights: int = 0  # runs of messages in one direction, both sides counted
    round_trips: int = 0  # flights that came back from the server
    retransmissions: int = 0  # flights the client sent again because its timer ran out
    client_extensions: tuple = ()  # extension types in the (last) ClientHello
    server_extensions: tuple = ()  # extension types in the ServerHello
    seconds: float = 0.0


class Tally:
    # datagram: DTLS (one call per datagram, 13-byte headers); otherwise a TLS byte stream
    # that may split records anywhere. resumption: whether the ChangeCipherSpec order means
    # anything (TLS 1.3 sends a compatibility ChangeCipherSpec in every handshake).
    def __init__(self, record, *, datagram, resumption=True):
        self.record = record
        self._datagram = datagram
        self._resumption = resumption
        self._header = _DTLS_HEADER if datagram else _TLS_HEADER
        self._stream = {"out": bytearray(), "in": bytearray()}
        self._ccs = {"out": False, "in": False}
        self._direction = None
        self._start = time.monotonic()

    def sent(self, data):
        self._flight("out")
        if self._datagram:
            self.record.datagrams_sent += 1
        self._records("out", data)

    def received(self, data):
        if self._flight("in"):
            self.record.round_trips += 1
        if self._datagram:
            self.record.datagrams_received += 1
        self._records("in", data)

    def dropped(self):
        self.record.dropped += 1

    def retransmitted(self):
        self.record.retransmissions += 1

    def finish(self, ok, reason=None):
        self.record.ok = ok
        self.record.reason = reason
        self.record.seconds = round(time.monotonic() - self._start, 3)

    def _flight(self, direction):
        new = direction != self._direction
        if new:
            self._direction = direction
            self.record.flights += 1
        return new

    def _records(self, direction, data):
        if self._datagram:
            # Each datagram holds whole records; a partial one at the end is junk to DTLS too.
            buf, start = data, 0
        else:
            buf = self._stream[direction]
            buf += data
            start = 0
        while len(buf) - start >= self._header:
            length = struct.unpack_from("!H", buf, start + self._header - 2)[0]
            end = start + self._header + length
            if end > len(buf):
                break
            self._record(direction, buf[start], bytes(buf[start + self._header : end]))
            start = end
        if not self._datagram:
            del buf[:start]

    def _record(self, direction, content_type, body):
        if direction == "out":
            self.record.records_sent += 1
        else:
            self.record.records_received += 1
        if content_type == _CCS:
            other = "in" if direction == "out" else "out"
            if self._resumption and direction == "in" and not self._ccs[other]:
                self.record.resumed = True
            self._ccs[direction] = True
        elif content_type == _HANDSHAKE and not self._ccs[direction]:
            # Before its ChangeCipherSpec a side's handshake records are in the clear.
            self._hello(body)

    def _hello(self, body):
        hs_header = _DTLS_HS_HEADER if self._datagram else _TLS_HS_HEADER
        if len(body) < hs_header or body[0] not in (_CLIENT_HELLO, _SERVER_HELLO):
            return
        if self._datagram and body[6:9] != b"\0\0\0":
            return  # a later fragment of a fragmented hello
        try:
            types = _extension_types(body[hs_header:], body[0], self._datagram)
        except (IndexError, struct.error):
            return  # cut short: a fragment, or not a hello after all
        if body[0] == _CLIENT_HELLO:
            self.record.client_extensions = types
        else:
            self.record.server_extensions = types


# The extension types of a ClientHello or ServerHello body, in order.
def _extension_types(body, msg_type, datagram):
    pos = 2 + 32  # version, random
    pos += 1 + body[pos]  # session_id
    if msg_type == _CLIENT_HELLO:
        if datagram:
            pos += 1 + body[pos]  # cookie
        pos += 2 + struct.unpack_from("!H", body, pos)[0]  # cipher_suites
        pos += 1 + body[pos]  # compression_methods
    else:
        pos += 2 + 1  # cipher_suite, compression_method
    if pos == len(body):
        return ()
    end = pos + 2 + struct.unpack_from("!H", body, pos)[0]
    pos += 2
    types = []
    while pos + 4 <= end:
        ext_type, length = struct.unpack_from("!HH", body, pos)
        types.append(ext_type)
        pos += 4 + length
    if pos != end or end > len(body):
        raise IndexError("extension list does not add up")
    return tuple(types)
