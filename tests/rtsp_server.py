"""A real RTSP server for the stream tests: GStreamer's RTSP server (Debian gir1.2-gst-rtsp-server-1.0)
serving one MJPEG AVI file at rtsp://127.0.0.1:PORT/street, as a camera or an NVR would.

Run with Debian's python3 (its python3-gi bindings), not the project's virtualenv:

    /usr/bin/python3 tests/rtsp_server.py FILE.avi PORT

It prints `ready` once it listens. Each client gets its own playback of the file from the start
(re-encoded to RTP/JPEG, in real time); the test ends the process to force a disconnect.
"""

from __future__ import annotations

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main(path: str, port: str) -> int:
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( filesrc location="{path}" ! avidemux ! jpegdec ! videoconvert ! jpegenc quality=90 '
        "! rtpjpegpay name=pay0 pt=26 )"
    )
    factory.set_shared(False)
    server.get_mount_points().add_factory("/street", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{port}", file=sys.stderr)
        return 1
    print("ready", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
