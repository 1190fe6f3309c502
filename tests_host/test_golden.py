# Golden tests: for the inputs of the application note's transcripts, the library writes
# exactly the note's command lines (with the errata of PROTOCOL.md section 8 corrected and hex
# in upper case) and parses the note's own replies. The expected lines are read from the note
# itself, so a change on either side shows here.

import json
import os
import re

import pytest
from scripted import START, ScriptedUART

import st87

SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared")
NOTE = os.path.join(SHARED, "spec", "ST87MXX_TLS_Application_Note.txt")
VECTORS = json.load(open(os.path.join(SHARED, "vectors", "seed_vectors.json")))

# PROTOCOL.md section 8: misspelt command names and the stray space after '='.
HEX = re.compile(r"[0-9a-fA-F]+")
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
            steps.append([line, []])
        elif not steps:
            continue
        elif HEX.fullmatch(line) and not steps[-1][1]:
            steps[-1][0] += line  # the note wraps long hex at 80 columns
        elif HEX.fullmatch(line) and HEX.fullmatch(steps[-1][1][-1]):
            steps[-1][1][-1] += line
        else:
            steps[-1][1].append(line)
    return [tuple(step) for step in steps]


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


# The note's session through the public API, on scripted replies: returns what the library
# wrote after start(). The reply to the send is the note's echo of the same text.
def note_session(script, proto, text, chunk, **connect):
    uart = ScriptedUART(script, chunk=chunk)
    modem = st87.Modem(uart)
    modem.start(timeout_ms=2000)
    sock = modem.socket(proto, sec_id=0, local_port=5000, urc=1)
    sock.connect(("192.168.21.4", 4433), **connect)
    assert sock.state == st87.sockets.CONNECTED and sock.id == 0
    assert sock.send(text.encode()) == len(text)
    assert sock.recv(64) == text.encode()
    sock.close()
    assert not uart.steps, "the note's lines were not all written"
    return bytes(uart.written)[sum(len(c) for c, _ in START) :]


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
    session = note_session(script, st87.TCP, text, chunk=5)
    assert session == (
        b"AT#SOCKETCREATE=5,0,TCP,5000,60,60,1,0\r"
        b"AT#TCPCONNECT=5,0,192.168.21.4,4433\r"
        b"AT#IPSENDTCP=5,0,1,20\r"
        b"ST87M_NBIOT_TLS_test"  # the raw payload, after the module's first OK
        b"AT#IPREAD=5,0\r"
        b"AT#SOCKETCLOSE=5,0\r"
    )


PROVISION = [
    (b"AT#TLSKEYLIST\r", b"\r\nOK\r\n"),
    (b"AT#TLSCERTLIST\r", b"\r\nOK\r\n"),
]


def started(script):
    uart = ScriptedUART(list(START) + script, chunk=11)
    modem = st87.Modem(uart)
    modem.start(timeout_ms=2000)
    return modem, uart


def test_note_4_3_imported_key_and_certificate():
    steps = transcript("### 4.3.3 Terminal", "## 4.4 Asymmetric")
    assert [c.split("=")[0] for c, _ in steps] == [
        "AT#TLSCERTADD",
        "AT#TLSKEYADD",
        "AT#TLSCERTADD",
    ]
    ca_line, key_step, cert_step = steps

    # The note's CA is corrupt (1203 hex digits for 600 bytes): refused here, nothing sent.
    modem, uart = started([])
    ca_hex = ca_line[0].rsplit(",", 1)[1]
    with pytest.raises(ValueError, match=r"declares 600 bytes.*1203 hex digits"):
        modem.tls.add_ca(0, ca_hex)
    assert not uart.steps and uart.lines()[-1] == b"AT#SOCKETCREATE?"

    # The key and the certificate: exactly the note's lines, and its replies understood.
    for cmd, replies in (key_step, cert_step):
        uart.add(b"AT#TLSKEYLIST\r", b"\r\nOK\r\n" if cmd.startswith("AT#TLSKEY") else OK_KEY)
        uart.add(b"AT#TLSCERTLIST\r", b"\r\nOK\r\n")
        if cmd.startswith("AT#TLSKEY"):
            uart.add(b"AT+CFUN=4\r", b"\r\nOK\r\n")
        uart.add(upper_hex(cmd).encode() + b"\r", frame(replies))
    public = modem.tls.import_key(0, bytes.fromhex(VECTORS["private_key_der_4_3"]))
    assert public == bytes.fromhex(VECTORS["public_key_returned"])
    modem.tls.add_cert(0, bytes.fromhex(VECTORS["client_cert"]))
    assert not uart.steps
    assert uart.lines()[-1] == upper_hex(cert_step[0]).encode()


OK_KEY = b"\r\n#TLSKEYLIST: 0,0,2,0,256\r\n\r\nOK\r\n"


def test_note_4_4_generated_key_and_module_signed_csr():
    steps = transcript("\n4.4.3 Terminal\n", "## 5 TLS/DTLS")
    names = [c.split("=")[0] for c, _ in steps]
    assert names == ["AT#TLSCERTADD", "AT#TLSKEYADD", "AT#TLSCERTSIGN", "AT#TLSCERTADD"]
    ca_line, gen_step, sign_step, cert_step = steps
    modem, uart = started([])
    with pytest.raises(ValueError, match=r"declares 600 bytes.*1199 hex digits"):
        modem.tls.add_ca(0, ca_line[0].rsplit(",", 1)[1])

    uart.add(b"AT#TLSKEYLIST\r", b"\r\nOK\r\n")
    uart.add(b"AT#TLSCERTLIST\r", b"\r\nOK\r\n")
    uart.add(b"AT+CFUN=4\r", b"\r\nOK\r\n")
    uart.add(gen_step[0].encode() + b"\r", frame(gen_step[1]))
    public = modem.tls.generate_key(0)
    assert public == bytes.fromhex(VECTORS["public_key_returned"])

    uart.add(upper_hex(sign_step[0]).encode() + b"\r", frame(sign_step[1]))
    signed = modem.tls.sign_csr(0, bytes.fromhex(VECTORS["dummy_csr_4_4"]))
    assert signed == bytes.fromhex(VECTORS["csr_signed_4_4"])

    uart.add(b"AT#TLSKEYLIST\r", OK_KEY)
    uart.add(b"AT#TLSCERTLIST\r", b"\r\nOK\r\n")
    uart.add(upper_hex(cert_step[0]).encode() + b"\r", frame(cert_step[1]))
    modem.tls.add_cert(0, bytes.fromhex(VECTORS["client_cert"]))
    assert not uart.steps


def test_note_5_3_dtls_session_with_connection_id():
    steps = transcript("### 5.3.3 Terminal", "IMPORTANT NOTICE")
    names = [c.split("=")[0] for c, _ in steps]
    assert names == [
        "AT#SOCKETCREATE",
        "AT#DTLSCONNECT",
        "AT#IPSENDUDP",
        "AT#IPREAD",
        "AT#SOCKETCLOSE",
    ]
    # Erratum 6: the note creates the DTLS socket as TCP; it must be UDP.
    create = steps[0][0].replace(",TCP,", ",UDP,")
    assert create == "AT#SOCKETCREATE=5,0,UDP,5000,60,60,1,0"
    send = steps[2][0]
    text = send.split(",", 6)[6]  # the ASCII payload of the note's type-0 send
    script = list(START) + [(create.encode() + b"\r", frame(steps[0][1]))]
    for cmd, replies in steps[1:]:
        if cmd.startswith("AT#IPSENDUDP"):
            head = cmd.split(",", 5)[:5]  # 5,0,192.168.21.4,4433,<rai>
            script.append(((",".join(head) + ",1,%d\r" % len(text)).encode(), b"\r\nOK\r\n"))
            script.append((text.encode(), frame(replies)))
        else:
            script.append((cmd.encode() + b"\r", frame(replies)))
    session = note_session(script, st87.UDP, text, chunk=6, cid=bytes.fromhex("AABBCCDD01"))
    assert session == (
        b"AT#SOCKETCREATE=5,0,UDP,5000,60,60,1,0\r"
        b"AT#DTLSCONNECT=5,0,192.168.21.4,4433,5,AABBCCDD01\r"
        b"AT#IPSENDUDP=5,0,192.168.21.4,4433,0,1,21\r"
        b"ST87M_NBIOT_DTLS_test"
        b"AT#IPREAD=5,0\r"
        b"AT#SOCKETCLOSE=5,0\r"
    )
