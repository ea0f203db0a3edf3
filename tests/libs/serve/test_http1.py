"""The proxy's HTTP/1.1 protocol (minray.serve.http1) over real loopback sockets.

A server on an event loop thread answers with what it parsed (as JSON); the
tests write raw bytes, split and joined the ways real clients and networks do.
"""
import asyncio
import json
import socket
import threading

import pytest

from minray.serve import http1

_TEXT = [("Content-Type", "text/plain; charset=utf-8")]


def _dispatch(head, http):
    if head.path == "/slow":               # answered later: pipelined requests must wait
        asyncio.get_running_loop().call_later(0.2, http.full, 200, _TEXT, b"slow")
        return
    if head.path == "/stream":
        async def stream():
            http.start(200, [(b"content-type", b"text/plain")])
            for part in (b"a", b"bb", b"ccc"):
                await http.write(part)
            http.end()
        asyncio.get_running_loop().create_task(stream())
        return
    if head.path == "/nocontent":          # a streamed 204: no body, no chunking
        http.start(204, [])
        http.end()
        return
    if head.path == "/boom":
        raise RuntimeError("dispatch failed")
    if head.path == "/inject":
        return http.full(200, [("X-Bad", "a\r\nSet-Cookie: x=1")], b"")
    http.full(200, [("Content-Type", "application/json")], json.dumps({
        "method": head.method, "path": head.path, "query": head.query.decode(),
        "version": head.version, "body": head.body.decode("latin-1"),
        "headers": [[k.decode(), v.decode()] for k, v in head.headers]}).encode())


@pytest.fixture(scope="module")
def port():
    loop = asyncio.new_event_loop()
    conns = set()
    server = loop.run_until_complete(loop.create_server(
        lambda: http1.HttpConnection(_dispatch, conns), "127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield server.sockets[0].getsockname()[1]
    loop.call_soon_threadsafe(server.close)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


class Reader:
    """Reads whole HTTP responses from a socket (Content-Length or chunked)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self, head_only=False):
        status = int(self._line().split(b" ")[1])
        headers = {}
        while True:
            line = self._line()
            if not line:
                break
            k, _, v = line.partition(b":")
            headers[k.strip().lower().decode()] = v.strip().decode()
        if head_only or status in (100, 204, 304):
            return status, headers, b""
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size = int(self._line(), 16)
                if size == 0:
                    assert self._line() == b""
                    return status, headers, body
                body += self._take(size)
                assert self._take(2) == b"\r\n"
        return status, headers, self._take(int(headers["content-length"]))

    def closed(self):
        try:
            self._fill()
        except (EOFError, ConnectionResetError):
            return True
        return False


def connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock, Reader(sock)


def test_keep_alive_partial_reads_and_two_requests_in_one_packet(port):
    sock, r = connect(port)
    with sock:
        request = b"POST /a/b%20c?x=1&y=%26 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
        for i in range(len(request)):         # one byte per packet
            sock.sendall(request[i:i + 1])
        status, headers, body = r.response()
        got = json.loads(body)
        assert status == 200 and got["path"] == "/a/b c" and got["query"] == "x=1&y=%26"
        assert got["body"] == "hello" and ["Host", "h"] in got["headers"]
        assert "date" in headers and "connection" not in headers
        # Two requests in one packet, the first answered late: answers stay in order.
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\nGET /fast HTTP/1.1\r\nHost: h\r\n\r\n")
        assert r.response()[2] == b"slow"
        assert json.loads(r.response()[2])["path"] == "/fast"


def test_connection_close_http10_and_head(port):
    sock, r = connect(port)
    with sock:
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        status, headers, _ = r.response()
        assert status == 200 and headers["connection"] == "close"
        assert r.closed()
    sock, r = connect(port)
    with sock:
        sock.sendall(b"GET /x HTTP/1.0\r\n\r\n")         # HTTP/1.0: closes by default
        assert json.loads(r.response()[2])["version"] == "1.0"
        assert r.closed()
    sock, r = connect(port)
    with sock:
        sock.sendall(b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                     b"HEAD /y HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, headers, body = r.response()
        assert headers["connection"] == "keep-alive" and json.loads(body)["path"] == "/x"
        status, headers, _ = r.response(head_only=True)   # HEAD: the length, no body
        assert int(headers["content-length"]) > 0
        sock.sendall(b"GET /z HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert json.loads(r.response()[2])["path"] == "/z"  # no stray HEAD body before it


def test_chunked_request_body_and_expect_continue(port):
    sock, r = connect(port)
    with sock:
        sock.sendall(b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5;ext=1\r\nhello\r\n")
        sock.sendall(b"6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
        assert json.loads(r.response()[2])["body"] == "hello world"
        sock.sendall(b"POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        assert r.response()[0] == 100                     # the client may now send
        sock.sendall(b"abc")
        assert json.loads(r.response()[2])["body"] == "abc"


def test_streamed_response_is_chunked(port):
    sock, r = connect(port)
    with sock:
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: h\r\n\r\nGET /after HTTP/1.1\r\n\r\n")
        status, headers, body = r.response()
        assert headers["transfer-encoding"] == "chunked" and body == b"abbccc"
        assert json.loads(r.response()[2])["path"] == "/after"
        sock.sendall(b"GET /nocontent HTTP/1.1\r\n\r\nGET /next HTTP/1.1\r\n\r\n")
        status, headers, _ = r.response()
        assert status == 204 and "transfer-encoding" not in headers
        assert json.loads(r.response()[2])["path"] == "/next"


@pytest.mark.parametrize("raw, status, words", [
    (b"GARBAGE\r\n\r\n", 400, "Malformed request line"),
    (b"GET /x HTTP/1.1 extra\r\n\r\n", 400, "Malformed request line"),
    (b"GET /x HTTP/2.0\r\n\r\n", 505, "Unsupported HTTP version"),
    (b"GET x HTTP/1.1\r\n\r\n", 400, "Malformed request target"),
    (b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400, "Malformed header line"),
    (b"GET / HTTP/1.1\r\nBad Name: v\r\n\r\n", 400, "Malformed header line"),
    (b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", 400, "Invalid character"),
    (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "Invalid Content-Length"),
    (b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", 400,
     "Invalid Content-Length"),
    (b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
     "Both Content-Length"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "not supported"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "chunk size"),
    (b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413, "exceeds"),
    (b"GET / HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431, "longer than"),
    (b"GET / HTTP/1.1\r\n" + b"X-Many: aaaaaaaaaaaaaaaa\r\n" * 3000, 431, "too large"),
])
def test_malformed_requests_are_refused_and_closed(port, raw, status, words):
    sock, r = connect(port)
    with sock:
        sock.sendall(raw)
        got, headers, body = r.response()
        assert got == status and words in body.decode(), body
        assert headers["connection"] == "close" and r.closed()


def test_server_errors_become_500_and_the_server_keeps_serving(port):
    sock, r = connect(port)
    with sock:
        sock.sendall(b"GET /boom HTTP/1.1\r\n\r\n")
        assert r.response()[0] == 500
        sock.sendall(b"GET /inject HTTP/1.1\r\n\r\n")   # CR/LF in a header value: refused
        status, headers, body = r.response()
        assert status == 500 and "set-cookie" not in headers and b"CR or LF" in body
        sock.sendall(b"GET /ok HTTP/1.1\r\n\r\n")
        assert r.response()[0] == 200


def test_parse_head_is_incomplete_until_the_blank_line():
    assert http1.parse_head(b"GET / HTTP/1.1\r\nHost: h\r\n", 0) is None
    head = http1.parse_head(b"\r\nGET http://h:1/p?q HTTP/1.1\r\n\r\n", 0)
    assert head.path == "/p" and head.query == b"q" and head.end == 33
    assert http1.dechunk(b"3\r\nab", 0) is None
    assert http1.dechunk(b"3\r\nabc\r\n0\r\n\r\nrest", 0) == (b"abc", 13)
