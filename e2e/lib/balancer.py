"""A round-robin HTTP load balancer for the e2e runner's multi-node mode (Python's
standard library only).

Each request, not each connection, goes to the next node in turn, so that the steps
of one flow (authorize, the login and consent POSTs, token, userinfo, refresh,
introspect, revoke, logout) land on different nodes even when the client keeps its
connection alive. What it does to a request: appends the client's address to
`X-Forwarded-For` (the nodes trust 127.0.0.1 as a proxy), drops the hop-by-hop
headers; everything else, the `Host` header included, goes through as sent. What it
does to a response: drops the hop-by-hop headers; every other header (each
`Set-Cookie`, `Location`) goes back untouched. Bodies are streamed both ways.

It counts the requests each node served, per phase (the runner names the suite that
is running) and per path, for the runner to print and check.

Run by itself: python3 e2e/lib/balancer.py PORT URL1 URL2 ...
"""

import http.client
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# RFC 9110 §7.6.1: meant for one connection, never forwarded.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
UPSTREAM_TIMEOUT = 120
CHUNK = 64 * 1024


class Balancer:
    def __init__(self, nodes, port=0):
        """`nodes`: the base URLs (http://HOST:PORT) of the nodes, in turn order."""
        self.nodes = [urlsplit(u).netloc for u in nodes]
        self.names = [f"node{i + 1}" for i in range(len(nodes))]
        self.lock = threading.Lock()
        self.turn = 0
        self.phase = "setup"
        # (phase, node name) -> requests; (phase, node name, method path) -> requests.
        self.counts = Counter()
        self.routes = Counter()
        # (phase, node name, method path), in the order the requests came.
        self.sequence = []
        self.errors = []
        self.started = False
        balancer = self

        class Handler(ProxyHandler):
            pass

        Handler.balancer = balancer
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.started = True
        return self

    def stop(self):
        if self.started:  # shutdown() waits for a serve_forever() that never began
            self.server.shutdown()
        self.server.server_close()

    def set_phase(self, phase):
        with self.lock:
            self.phase = phase

    def next_node(self, method, path):
        with self.lock:
            i = self.turn % len(self.nodes)
            self.turn += 1
            name = self.names[i]
            self.counts[(self.phase, name)] += 1
            route = f"{method} {path.split('?', 1)[0]}"
            self.routes[(self.phase, name, route)] += 1
            self.sequence.append((self.phase, name, route))
            return self.nodes[i], name

    def per_node(self, phase):
        return {n: self.counts[(phase, n)] for n in self.names}

    def phases(self):
        seen = []
        for phase, _ in self.counts:
            if phase not in seen:
                seen.append(phase)
        return seen

    def first_flow(self, phase):
        """The steps of the phase's first code flow with a login, in order, as (route,
        node): from the authorization request before the first login POST to the first
        token request after it."""
        seq = [(route, name) for p, name, route in self.sequence if p == phase]
        login = next((i for i, (r, _) in enumerate(seq)
                      if r == "POST /oauth/authorize/login"), None)
        if login is None:
            return []
        start = max((i for i in range(login) if seq[i][0] == "GET /oauth/authorize"),
                    default=None)
        end = next((i for i in range(login, len(seq)) if seq[i][0] == "POST /oauth/token"),
                   None)
        if start is None or end is None:
            return []
        return seq[start:end + 1]

    def route_table(self, phase):
        """{route: {node: requests}} for one phase."""
        table = {}
        for (p, name, route), n in self.routes.items():
            if p == phase:
                table.setdefault(route, {})[name] = n
        return dict(sorted(table.items()))


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive with the client: many requests a connection
    balancer = None

    def log_message(self, *args):
        pass

    def _request_body(self):
        """The request body as an iterator of byte strings (None: no body)."""
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            def chunks():
                while True:
                    size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                    if size == 0:
                        # Trailers, up to the empty line.
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return
                    yield self.rfile.read(size)
                    self.rfile.readline()
            return chunks(), None
        length = int(self.headers.get("content-length") or 0)
        if not length:
            return None, 0

        def fixed():
            left = length
            while left:
                data = self.rfile.read(min(CHUNK, left))
                if not data:
                    raise ConnectionError("the client closed the connection mid-body")
                left -= len(data)
                yield data
        return fixed(), length

    def _forward(self):
        b = self.balancer
        target, name = b.next_node(self.command, self.path)
        body, length = self._request_body()
        upstream = http.client.HTTPConnection(target, timeout=UPSTREAM_TIMEOUT)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True,
                                skip_accept_encoding=True)
            forwarded_for = None
            for key, value in self.headers.items():
                k = key.lower()
                if k in HOP_BY_HOP or k == "content-length":
                    continue
                if k == "x-forwarded-for":
                    forwarded_for = value
                    continue
                upstream.putheader(key, value)
            client = self.client_address[0]
            upstream.putheader(
                "X-Forwarded-For", f"{forwarded_for}, {client}" if forwarded_for else client
            )
            chunked = body is not None and length is None
            if chunked:
                upstream.putheader("Transfer-Encoding", "chunked")
            elif length:
                upstream.putheader("Content-Length", str(length))
            upstream.endheaders()
            if body is not None:
                for data in body:
                    if chunked:
                        if data:
                            upstream.send(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    else:
                        upstream.send(data)
                if chunked:
                    upstream.send(b"0\r\n\r\n")
            resp = upstream.getresponse()
        except (OSError, http.client.HTTPException) as e:
            upstream.close()
            with b.lock:
                b.errors.append(f"{name} {self.command} {self.path}: {e!r}")
            self._bad_gateway(name, e)
            return
        try:
            self._relay(resp)
        finally:
            upstream.close()

    def _relay(self, resp):
        self.send_response_only(resp.status, resp.reason)
        no_body = self.command == "HEAD" or resp.status in (204, 304) or resp.status < 200
        length = resp.getheader("content-length")
        for key, value in resp.getheaders():  # every Set-Cookie, in order
            k = key.lower()
            if k in HOP_BY_HOP:
                continue
            self.send_header(key, value)
        # Without a length, the body goes back chunked (http.client has de-chunked it).
        chunked = not no_body and length is None
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if no_body:
            self.wfile.flush()
            return
        while True:
            # read1: what has arrived, without waiting for a whole buffer (streams
            # such as Server-Sent Events go through as they come).
            data = resp.read1(CHUNK)
            if not data:
                break
            if chunked:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            else:
                self.wfile.write(data)
            self.wfile.flush()
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        if resp.will_close and length is None and not chunked:
            self.close_connection = True

    def _bad_gateway(self, name, error):
        body = f"balancer: {name} did not answer: {error!r}\n".encode()
        self.send_response_only(502)
        self.send_header("content-type", "text/plain; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _forward


if __name__ == "__main__":
    lb = Balancer(sys.argv[2:], int(sys.argv[1]))
    print(f"balancing {lb.url} over {', '.join(sys.argv[2:])}", flush=True)
    try:
        lb.server.serve_forever()
    except KeyboardInterrupt:
        pass
