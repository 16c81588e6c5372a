#!/usr/bin/python3
"""Floor for an incremental backup: read only the extents a dirty bitmap marks, with python3-libnbd
(256 KiB requests, 16 in flight), discarding the data. Usage: dirty-read.py URI BITMAP"""
import sys
import nbd

uri, bitmap = sys.argv[1], sys.argv[2]
ctx = "qemu:dirty-bitmap:" + bitmap
h = nbd.NBD()
h.add_meta_context(ctx)
h.connect_uri(uri)
size = h.get_size()
extents = []

def cb(metacontext, offset, entries, err):
    if metacontext != ctx:
        return 0
    pos = offset
    for i in range(0, len(entries), 2):
        length, flags = entries[i], entries[i + 1]
        if flags & 1:
            extents.append((pos, length))
        pos += length
    cb.end = pos
    return 0

pos = 0
while pos < size:
    cb.end = pos
    h.block_status(min(1 << 30, size - pos), pos, cb)
    pos = cb.end
MAX = 256 * 1024
buf = nbd.Buffer(MAX)
total = 0
for off, length in extents:
    end = off + length
    while off < end:
        n = min(MAX, end - off)
        while h.aio_in_flight() >= 16:
            h.poll(-1)
        h.aio_pread(nbd.Buffer(n), off)
        off += n
        total += n
while h.aio_in_flight() > 0:
    h.poll(-1)
h.shutdown()
print(total)
