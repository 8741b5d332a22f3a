"""Runs localstripe (a local Stripe stand-in) for one test: on 127.0.0.1, on a free port (or on
the port given as the first argument), with its state in memory only, and prints the port once
it accepts connections.

localstripe's own `start()` binds every interface on port 8420 and loads and saves its state
in /tmp/localstripe.pickle, so parallel tests would collide and share objects. This builds the
same aiohttp app without either. The server exits when its stdin closes, so it cannot outlive
the test process that spawned it.
"""

import asyncio
import os
import socket
import sys
import threading

from aiohttp import web
from localstripe import resources
from localstripe.server import app

# State stays in this process: never read from or written to the shared pickle file.
resources.Store.dump_to_disk = lambda self: None
resources.Store.try_load_from_disk = lambda self: None


def exit_when_stdin_closes():
    sys.stdin.buffer.read()
    os._exit(0)


async def main(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    print(sock.getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
