"""The merchant's webhook receiver of the cluster scenario: answers every delivery 200 and
appends `<event id> <event type>` to a file, one line per delivery (duplicates included), so
the scenario can check that every event arrived and none more often than it was attempted.

    python3 tests/cluster/receiver.py <port> <file>
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, path = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
out = open(path, "a", buffering=1)


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        event = json.loads(body)
        with lock:
            out.write("%s %s\n" % (event["id"], event["type"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Receiver).serve_forever()
