#!/usr/bin/python3
"""Reads gst-lalm's alerts from the bus of a GStreamer pipeline, with PyGObject.

    /usr/bin/python3 examples/python/alerts.py [--rules rules.toml] FILE|URI

Builds `uridecodebin ! lalm-interact ! fakesink`, and for every `lalm-alert` element message
prints one JSON object per line: kind, rule, label, text, confidence, start and end (stream
time, seconds). Needs Debian's python3-gi and gir1.2-gstreamer-1.0 (the setup command
installs them) and the plugin where GStreamer finds it (the setup command installs it in
~/.local/share/gstreamer-1.0/plugins).
"""

import argparse
import json
import os
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input", help="audio file or URI")
    ap.add_argument("--rules", help="alert rules file (TOML); default: the built-in rules")
    args = ap.parse_args()

    Gst.init(None)
    uri = args.input if "://" in args.input else Gst.filename_to_uri(os.path.abspath(args.input))
    pipeline = Gst.parse_launch(
        "uridecodebin name=src caps=audio/x-raw expose-all-streams=false "
        "! lalm-interact name=lalm finals-only=true ! fakesink sync=false async=false"
    )
    pipeline.get_by_name("src").set_property("uri", uri)
    if args.rules:
        pipeline.get_by_name("lalm").set_property("rules", args.rules)

    loop = GLib.MainLoop()
    status = {"code": 0}

    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.ELEMENT:
            s = msg.get_structure()
            if s is not None and s.get_name() == "lalm-alert":
                alert = {
                    "kind": s.get_string("kind"),
                    "rule": s.get_string("rule"),
                    "label": s.get_string("label"),
                    "text": s.get_string("text"),
                    "confidence": round(s.get_double("confidence")[1], 3),
                    "start": s.get_uint64("start")[1] / 1e9,
                    "end": s.get_uint64("end")[1] / 1e9,
                }
                print(json.dumps(alert), flush=True)
        elif msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            print(f"error: {err.message} ({debug})", file=sys.stderr)
            status["code"] = 1
            loop.quit()
        elif msg.type == Gst.MessageType.EOS:
            loop.quit()

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        # The element's error message is on the bus; let the loop print it.
        status["code"] = 1
    loop.run()
    pipeline.set_state(Gst.State.NULL)
    return status["code"]


if __name__ == "__main__":
    sys.exit(main())
