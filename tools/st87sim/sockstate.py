# The socket model that the TCP commands (module.py) and the UDP/DTLS commands (udp.py) share:
# the context id, limits, socket states and the per-socket record.

import collections

CID = 5  # the only PDN context; the note's examples use 5
MAX_SOCKETS = 6
MAX_PAYLOAD = 1400  # bytes per send and per received TCP frame [model]

# Socket states, as AT#SOCKETCREATE? prints them [model].
SOCK_CREATED = 0
SOCK_CONNECTED = 1
SOCK_CLOSED = 2  # the peer or the stack closed it; the id stays allocated
STATE_NAMES = {SOCK_CREATED: "created", SOCK_CONNECTED: "connected", SOCK_CLOSED: "closed"}


class Socket:
    def __init__(self, sock_id, proto, *, local_port, send_to, recv_to, urc, sec_id):
        self.id = sock_id
        self.proto = proto
        self.local_port = local_port
        self.send_to = send_to
        self.recv_to = recv_to
        self.urc = urc
        self.sec_id = sec_id
        self.state = SOCK_CREATED
        self.conn = None
        self.remote = None  # (ip, port) really connected to, after routes
        self.peer = None  # (host, port) as the connect command named it, normalised
        self.cid_negotiated = False  # DTLS: a Connection ID is in use
        self.frames = collections.deque()


SocketInfo = collections.namedtuple(
    "SocketInfo", "id cid proto state sec_id local_port remote queued"
)


# A binary send (AT#IPSENDTCP or AT#IPSENDUDP type 1) waiting for its payload bytes; deliver
# (bytes) sends them once all came.
class RawSend:
    def __init__(self, sock, need, swallow, timer, deliver):
        self.sock = sock
        self.need = need
        self.buf = bytearray()
        self.swallow = swallow
        self.timer = timer
        self.deliver = deliver
