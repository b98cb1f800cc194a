#!/usr/bin/env python3
"""Runs a command and prints its peak resident memory (VmHWM, from wait4's
ru_maxrss, in KiB), its exit status and its wall time in seconds, one line:
`peak-kib STATUS SECONDS`. Used by the tests that bound compile's memory and by
hand: `python3 Scripts/peak-memory.py geogate compile bomb.gz -o x.trie`."""
import os
import sys
import time

start = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
print(f"{usage.ru_maxrss} {os.waitstatus_to_exitcode(status)} {time.monotonic() - start:.2f}")
