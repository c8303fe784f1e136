"""A tiny HTTP file server for the download tests, on 127.0.0.1 only.

Serves the files of --dir with GET, honours `Range: bytes=START-` (206 + Content-Range), writes its
port to --port-file once listening, logs each request as `GET <path> range=<header or ->` to --log,
and can misbehave on purpose:

  --die-after N   send the headers (full Content-Length) and N body bytes of the first request,
                  then exit the whole process (a server dying mid-download)
  --cut-once N    send N body bytes of the first request, then close that connection; keep serving
                  (a dropped connection that a retry with Range can resume)
  --lifetime S    exit after S seconds in any case (the tests never leave it running)
"""

import argparse
import http.server
import os
import sys
import threading


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--die-after", type=int, default=-1)
    ap.add_argument("--cut-once", type=int, default=-1)
    ap.add_argument("--lifetime", type=float, default=120.0)
    args = ap.parse_args()
    state = {"first": True}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            pass

        def do_GET(self):
            rng = self.headers.get("Range")
            with open(args.log, "a") as log:
                log.write(f"GET {self.path} range={rng or '-'}\n")
            name = os.path.basename(self.path)
            path = os.path.join(args.dir, name)
            if not name or not os.path.isfile(path):
                body = b"not found"
                self.send_response(404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            data = open(path, "rb").read()
            total = len(data)
            start = 0
            if rng and rng.startswith("bytes=") and rng.endswith("-"):
                start = int(rng[len("bytes="):-1])
                if start >= total:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{total}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            with lock:
                first = state["first"]
                state["first"] = False
            if first and args.die_after >= 0:
                self.wfile.write(body[: args.die_after])
                self.wfile.flush()
                os._exit(0)
            if first and args.cut_once >= 0:
                self.wfile.write(body[: args.cut_once])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Timer(args.lifetime, lambda: os._exit(0)).start()
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, args.port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
