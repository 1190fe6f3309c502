# The field-sensor application: provision the PSK profile if the module does not hold it yet,
# attach, open a TLS socket, send one reading, print the reply, close.
#
# Configuration comes from a JSON file on the board (st87.json by default; on the unix port
# its path may be given as the first argument). On a board it names the UART:
#   {"uart": {"id": 1, "tx": 17, "rx": 16, "baudrate": 115200}, "reset_pin": 5, ...}
# on the unix port the serial device or the pty that st87-sim printed:
#   {"port": "/dev/pts/3", ...}
# and in both cases the profile and the server:
#   {"sec_id": 0, "psk": "<64 hex digits>", "identity": "Client_identity",
#    "host": "192.168.21.4", "port_number": 4433, "trace": true}

import sys

import st87

CONFIG = "st87.json"


def load_config(path):
    import json

    with open(path) as f:
        return json.load(f)


def open_uart(cfg):
    if "port" in cfg:
        from st87.unix import UART

        return UART(cfg["port"], cfg.get("baudrate", 115200))

    from machine import UART, Pin

    u = cfg["uart"]
    # A receive buffer larger than the default lets the FIFO hold a whole certificate line
    # while the application is busy elsewhere.
    return UART(
        u["id"],
        baudrate=u.get("baudrate", 115200),
        tx=Pin(u["tx"]),
        rx=Pin(u["rx"]),
        timeout=20,
        rxbuf=2048,
    )


def trace(direction, data):
    # The driver has already redacted credentials; print the rest as text.
    print(direction, bytes(data).decode("utf-8", "replace") if data else "")


def reading():
    # One sensor reading. A board with an ADC would read it here; this one reports uptime.
    try:
        from time import ticks_ms
    except ImportError:
        from time import monotonic

        def ticks_ms():
            return int(monotonic() * 1000)

    return "st87 sensor uptime_ms={}\n".format(ticks_ms())


def provision(modem, cfg):
    tls = modem.tls
    sec_id = cfg["sec_id"]
    if tls.has_psk(sec_id, cfg["identity"]):
        print("profile", sec_id, "already provisioned")
        return
    print("provisioning PSK profile", sec_id)

    # Replace only the PSK elements: anything else the profile holds stays.
    tls.delete(sec_id, "psk")
    tls.delete(sec_id, "identity")
    tls.add_psk(sec_id, cfg["psk"], cfg["identity"])
    tls.save()


def run(cfg):
    reset_pin = None
    if "reset_pin" in cfg:
        from machine import Pin

        reset_pin = Pin(cfg["reset_pin"], Pin.OUT, value=1)

    # The server's replies are short: the buffer for a frame larger than recv's is made only
    # if one comes (frame_buf=False), which keeps 1.5 KB of heap free.
    modem = st87.Modem(
        open_uart(cfg),
        reset_pin=reset_pin,
        trace=trace if cfg.get("trace", True) else None,
        frame_buf=False,
    )
    modem.start()
    provision(modem, cfg)
    modem.attach()

    with modem.socket(st87.TCP, sec_id=cfg["sec_id"]) as sock:
        sock.settimeout(cfg.get("timeout_s", 30))
        sock.connect((cfg["host"], cfg["port_number"]))
        sock.write(reading().encode())

        # The server answers one line.
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(256)
            if not chunk:
                break
            reply += chunk
    print("reply:", reply.decode().strip())


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else CONFIG
    run(load_config(path))


if __name__ == "__main__":
    main()
