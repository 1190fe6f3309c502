# Golden tests: for the inputs of the application note's transcripts, the library writes
# exactly the note's command lines (with the errata of PROTOCOL.md section 8 corrected and hex
# in upper case) and parses the note's own replies. The expected lines are read from the note
# itself, so a change on either side shows here.

import json
import os
import re

from scripted import START, ScriptedUART

import st87

SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared")
NOTE = os.path.join(SHARED, "spec", "ST87MXX_TLS_Application_Note.txt")
VECTORS = json.load(open(os.path.join(SHARED, "vectors", "seed_vectors.json")))

# PROTOCOL.md section 8: misspelt command names and the stray space after '='.
ERRATA = [("AT#TLCERTADD", "AT#TLSCERTADD"), ("AT#TSLCERTADD", "AT#TLSCERTADD"), ("= ", "=")]


def transcript(start, end):
    # The terminal lines of one section as [(command, [reply lines])], errata corrected.
    text = open(NOTE, encoding="utf-8").read()
    body = text[text.index(start) : text.index(end)]
    steps = []
    for raw in body.splitlines():
        line = raw.strip().strip("*").strip()
        if not line or line.startswith("```") or line == "Terminal" or line.startswith("Below"):
            continue
        if line.startswith("AT"):
            for wrong, right in ERRATA:
                line = line.replace(wrong, right)
            steps.append((line, []))
        elif steps:
            steps[-1][1].append(line)
    return steps


def upper_hex(cmd):
    # The note prints command hex in lower case; the library writes upper case.
    head, _, tail = cmd.rpartition(",")
    return head + "," + tail.upper() if re.fullmatch(r"[0-9a-fA-F]+", tail) else cmd


def frame(replies):
    # The module's bytes for the note's reply lines. After "#IPREAD: c,s,n" the next line is
    # the n-byte payload, sent raw.
    out = b""
    raw_next = 0
    for r in replies:
        data = r.encode()
        if raw_next:
            assert len(data) == raw_next
            out += data + b"\r\n"
            raw_next = 0
            continue
        out += b"\r\n" + data + b"\r\n"
        m = re.match(r"#IPREAD: \d+,\d+,(\d+)$", r)
        if m:
            out = out[:-2] + b"\r\n"
            raw_next = int(m.group(1))
    return out


def test_note_4_2_psk_provisioning_lines():
    steps = transcript("### 4.2.3 Terminal", "## 4.3 Asymmetric")
    assert [c.split("=")[0] for c, _ in steps] == ["AT#TLSKEYADD", "AT#TLSCERTADD"]
    script = list(START) + [
        (b"AT#TLSKEYLIST\r", b"\r\nOK\r\n"),
        (b"AT#TLSCERTLIST\r", b"\r\nOK\r\n"),
        (b"AT+CFUN=4\r", b"\r\nOK\r\n"),
    ]
    for cmd, replies in steps:
        script.append((upper_hex(cmd).encode() + b"\r", frame(replies)))
    uart = ScriptedUART(script, chunk=7)
    modem = st87.Modem(uart)
    modem.start(timeout_ms=2000)

    psk = bytes.fromhex(VECTORS["psk_4_2"])
    modem.tls.add_psk(0, psk, VECTORS["psk_identity_4_2_text"])

    assert not uart.steps, "the note's lines were not all written"
    written = uart.lines()[-2:]
    assert written == [
        b"AT#TLSKEYADD=0,1,2,4,32," + VECTORS["psk_4_2"].upper().encode(),
        b"AT#TLSCERTADD=0,2,15," + VECTORS["psk_identity_4_2_hex"].upper().encode(),
    ]


def test_note_5_2_tls_session_lines_and_replies():
    steps = transcript("### 5.2.3 Terminal", "## 5.3 DTLS")
    names = [c.split("=")[0] for c, _ in steps]
    assert names == [
        "AT#SOCKETCREATE",
        "AT#TCPCONNECT",
        "AT#IPSENDTCP",
        "AT#IPREAD",
        "AT#SOCKETCLOSE",
    ]
    text = steps[2][0].split(",", 3)[3]  # the ASCII payload of the note's type-0 send
    script = list(START)
    for cmd, replies in steps:
        if cmd.startswith("AT#IPSENDTCP"):
            # The library sends with the binary data type: same payload, no quoting issues.
            script.append((b"AT#IPSENDTCP=5,0,1,%d\r" % len(text), b"\r\nOK\r\n"))
            script.append((text.encode(), frame(replies)))
        else:
            script.append((cmd.encode() + b"\r", frame(replies)))
    uart = ScriptedUART(script, chunk=5)
    modem = st87.Modem(uart)
    modem.start(timeout_ms=2000)

    sock = modem.socket(st87.TCP, sec_id=0, local_port=5000, urc=1)
    sock.connect(("192.168.21.4", 4433))
    assert sock.state == st87.sockets.CONNECTED and sock.id == 0
    assert sock.send(text.encode()) == len(text)
    assert sock.recv(64) == b"ST87M_NBIOT_TLS_test"
    sock.close()

    assert not uart.steps
    session = bytes(uart.written)[sum(len(c) for c, _ in START) :]
    assert session == (
        b"AT#SOCKETCREATE=5,0,TCP,5000,60,60,1,0\r"
        b"AT#TCPCONNECT=5,0,192.168.21.4,4433\r"
        b"AT#IPSENDTCP=5,0,1,20\r"
        b"ST87M_NBIOT_TLS_test"  # the raw payload, after the module's first OK
        b"AT#IPREAD=5,0\r"
        b"AT#SOCKETCLOSE=5,0\r"
    )
