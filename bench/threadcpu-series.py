#!/usr/bin/env python3
"""bench/threadcpu-series.py PID [QPID]: every 100 ms until PID exits, the CPU% of each group of PID's threads
(store workers, NBD reader, pack writers, JIT compilers, main), and of process QPID (e.g. the source qemu-nbd).
Used for the profiles in bench/README.md ("Where the time goes now")."""
import os, sys, time, re
pid = sys.argv[1]; qpid = sys.argv[2] if len(sys.argv) > 2 else None
def snap():
    d = {}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                name = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
                name = re.sub(r'([-#]?\d+)+$', '', name)
                f = open(f"/proc/{pid}/task/{tid}/stat").read().rsplit(')', 1)[1].split()
                d[(name, tid)] = int(f[11]) + int(f[12])
            except OSError: pass
    except OSError: return None
    if qpid:
        try:
            f = open(f"/proc/{qpid}/stat").read().rsplit(')', 1)[1].split()
            d[("qemu", 0)] = int(f[11]) + int(f[12])
        except OSError: pass
    return d
prev = snap(); t0 = time.time(); rows = []
names = ["java", "jbackup-store", "jbackup-nbd-io-", "pack-io", "pack-sealer", "C1 CompilerThre", "C2 CompilerThre",
         "qemu"]
print("   t  " + " ".join(f"{n[:8]:>8}" for n in names))
while True:
    time.sleep(0.1)
    cur = snap()
    if cur is None: break
    g = {}
    for k, v in cur.items():
        g[k[0]] = g.get(k[0], 0) + v - prev.get(k, 0)
    prev = cur
    print(f"{time.time()-t0:4.1f}  " + " ".join(f"{g.get(n,0)*10:8d}" for n in names))
