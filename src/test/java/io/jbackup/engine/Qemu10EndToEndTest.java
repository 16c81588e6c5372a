package io.jbackup.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.Qemu10;
import io.jbackup.testutil.QemuImages;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * jbackup with QEMU 10.0 on both ends of NBD, extended headers negotiated: a full and two incrementals
 * ({@link BackupChain}) read from {@code qemu-nbd 10 -r -A -B} restore bit-exact; {@code inspect} names the header
 * mode and its {@code --map} equals what qemu-nbd 10 reports (nbdinfo) and what jbackup reads from qemu-nbd 7.2; and
 * QEMU 10's {@code qemu-img convert} and {@code qemu-img compare} of every backup served by {@code jbackup serve}
 * match the source's snapshots, over extended headers (the GO reply's flags, from qemu-img's trace). Skipped, with
 * the reason, where QEMU 10 is absent.
 */
class Qemu10EndToEndTest {
    @TempDir
    static Path dir;
    static BackupChain chain;
    static ServedRepo served;

    @BeforeAll
    static void start() throws Exception {
        Qemu10.assume();
        Path r = dir.resolve("repo");
        Cli.run("init", "--repo", r.toString(), "--chunk-size", "64K").ok();
        chain = BackupChain.build(dir, r, List.of("--repo", r.toString()), Qemu10.tool("qemu-nbd"));
        served = ServedRepo.start(r, dir.resolve("serve.sock"));
    }

    @AfterAll
    static void stop() {
        if (served != null) {
            served.close();
        }
    }

    private static String exportUri(int i) {
        return served.uri("vda@" + chain.ids().get(i));
    }

    @Test
    void backupsReadFromQemuNbd10RestoreBitExact() {
        for (int i = 0; i < chain.ids().size(); i++) {
            Path out = dir.resolve("restore" + i + ".raw");
            Cli.run("restore", "--repo", chain.repo().toString(), "--disk", "vda", "--backup", chain.ids().get(i),
                "--to", out.toString()).ok();
            assertEquals(Proc.sha256(chain.snapshots().get(i)), Proc.sha256(out), "backup " + i);
        }
        JsonNode list = Cli.run("list", "--repo", chain.repo().toString(), "--json").ok().json();
        assertTrue(list.toString().contains("incremental"), list.toString());
    }

    @Test
    void inspectNamesExtendedHeadersAndMapsAsQemuNbd10Reports() {
        String[] contexts = {"base:allocation", "qemu:dirty-bitmap:b2", "qemu:dirty-bitmap:b1"};
        String[] maps = new String[contexts.length];
        try (Proc.Background s = Qemu10.qemuNbd(dir, chain.image(), "qcow2", "-r", "-A", "-B", "b1", "-B", "b2")) {
            String uri = QemuImages.uriOf(s);
            Cli.Result info = Cli.run("inspect", uri).ok();
            assertTrue(info.stdout().contains("protocol:       extended headers"), info.stdout());
            assertEquals("extended", Cli.run("inspect", "--json", uri).ok().json().get("headerMode").asText());
            for (int i = 0; i < contexts.length; i++) {
                maps[i] = Cli.run("inspect", "--map", contexts[i], uri).ok().stdout();
                assertEquals(Proc.run("nbdinfo", "--map=" + contexts[i], uri), maps[i], contexts[i]);
            }
            assertTrue(maps[1].contains("dirty"), maps[1]);
        }
        try (Proc.Background s = QemuImages.qemuNbd(dir, chain.image(), "qcow2", "-r", "-A", "-B", "b1", "-B", "b2")) {
            String uri = QemuImages.uriOf(s);
            assertTrue(Cli.run("inspect", uri).ok().stdout().contains("protocol:       structured replies"));
            for (int i = 0; i < contexts.length; i++) {
                assertEquals(maps[i], Cli.run("inspect", "--map", contexts[i], uri).ok().stdout(),
                    contexts[i] + " from qemu-nbd 7.2");
            }
        }
    }

    @Test
    void qemuImg10ConvertsAndComparesEveryServedBackupOverExtendedHeaders() {
        String qemuImg = Qemu10.tool("qemu-img");
        for (int i = 0; i < chain.ids().size(); i++) {
            Path snap = chain.snapshots().get(i);
            Path conv = dir.resolve("convert10-" + i + ".raw");
            Proc.run(qemuImg, "convert", "-f", "raw", "-O", "raw", exportUri(i), conv.toString());
            assertEquals(Proc.sha256(snap), Proc.sha256(conv), "qemu-img 10 convert of backup " + i);
            String cmp = Proc.run(qemuImg, "compare", "-f", "raw", "-F", "raw", exportUri(i), snap.toString());
            assertTrue(cmp.contains("Images are identical"), cmp);
        }
        Proc.Result diff = Proc.exec(java.time.Duration.ofSeconds(60), qemuImg, "compare", "-f", "raw", "-F", "raw",
            exportUri(2), chain.snapshots().get(0).toString());
        assertEquals(1, diff.exitCode(), "a different snapshot is not identical: " + diff);
        // qemu-img 10 asks for extended headers; jbackup serve advertises BLOCK_STATUS_PAYLOAD only with them
        Proc.Result traced = Proc.exec(java.time.Duration.ofSeconds(60), qemuImg, "--trace",
            "nbd_receive_negotiate_size_flags", "info", "-f", "raw", exportUri(0));
        Matcher m = Pattern.compile("export flags 0x([0-9a-f]+)").matcher(traced.stdout() + traced.stderr());
        assertTrue(m.find(), traced.toString());
        int flags = Integer.parseInt(m.group(1), 16);
        assertTrue((flags & (1 << 12)) != 0, "BLOCK_STATUS_PAYLOAD in 0x" + m.group(1));
    }
    /**
     * Over extended headers with BLOCK_STATUS_PAYLOAD an incremental asks for the dirty bitmap alone over each
     * window, then for allocation over the dirty chunks only (qemu-nbd 10's trace: the allocation replies cover the
     * dirty 64 KiB chunks, not the 16 MiB disk, where the full's cover it all). The backup equals the one made from
     * qemu-nbd 7.2, which answers every context: the same bytes read, the same restore, bit-exact, the discarded and
     * zeroed dirty ranges included.
     */
    @Test
    void anIncrementalAsksQemuNbd10ForAllocationOnlyWhereTheBitmapIsDirty() throws Exception {
        Path work = java.nio.file.Files.createDirectories(dir.resolve("dirty-first"));
        Path img = QemuImages.qcow2(work.resolve("d.qcow2"), "16M");
        QemuImages.io(img, "qcow2", "write -P 0x11 0 2M", "write -P 0x22 4M 1M");
        Path repo10 = work.resolve("repo10");
        Path repo72 = work.resolve("repo72");
        for (Path r : List.of(repo10, repo72)) {
            Cli.run("init", "--repo", r.toString(), "--chunk-size", "64K").ok();
        }
        Traced full = traced(work, repo10, img, "full", null, Qemu10.tool("qemu-nbd"));
        backup(repo72, img, "full", null, "qemu-nbd", work);
        assertTrue(full.allocationBytes() >= 16L << 20, "the full asks allocation over the whole disk: " + full);
        QemuImages.addBitmap(img, "b1");
        QemuImages.io(img, "qcow2", "write -P 0x44 100k 4k", "discard 4M 512k", "write -z 1M 64k",
            "write -P 0x55 12M 1M");
        Traced inc = traced(work, repo10, img, "incremental", "b1", Qemu10.tool("qemu-nbd"));
        long read72 = backup(repo72, img, "incremental", "b1", "qemu-nbd", work);
        assertTrue(inc.bitmapBytes() >= 16L << 20, "the bitmap over the whole disk: " + inc);
        // dirty: [64k, 128k) merged with [1M, 1M+64k)? no: 14 chunks apart merge (16-chunk gap), so [64k, 1088k);
        // [4M, 4.5M); [12M, 13M); allocation asked over those and nothing clean further away
        assertTrue(inc.allocationBytes() > 0 && inc.allocationBytes() <= (1024 + 512 + 1024) * 1024L,
            "allocation over the dirty chunks only: " + inc);
        assertEquals(read72, inc.bytesRead(), "the same bytes read as from qemu-nbd 7.2, which answers every context");
        Path out10 = work.resolve("r10.raw");
        Path out72 = work.resolve("r72.raw");
        Cli.run("restore", "--repo", repo10.toString(), "--disk", "vda", "--to", out10.toString()).ok();
        Cli.run("restore", "--repo", repo72.toString(), "--disk", "vda", "--to", out72.toString()).ok();
        String want = Proc.sha256(QemuImages.toRaw(img, work.resolve("want.raw")));
        assertEquals(want, Proc.sha256(out10));
        assertEquals(want, Proc.sha256(out72));
    }

    /**
     * Over extended headers the first block-status request of a full covers the whole export in one 64-bit length:
     * qemu-nbd 10 answers an 8 GiB disk holding two small extents of data with one reply per context covering all
     * of it (with compact headers the client starts at the 1 GiB window and doubles it). The restore is bit-exact.
     */
    @Test
    void aFullAsksQemuNbd10ForTheWholeExportInOneBlockStatusRequest() throws Exception {
        Path work = java.nio.file.Files.createDirectories(dir.resolve("whole-export"));
        Path img = QemuImages.qcow2(work.resolve("big.qcow2"), "8G");
        QemuImages.io(img, "qcow2", "write -P 0x31 0 1M", "write -P 0x32 5G 1M");
        Path repo = work.resolve("repo");
        Cli.run("init", "--repo", repo.toString()).ok();
        try (Proc.Background q = QemuImages.qemuNbd(Qemu10.tool("qemu-nbd"), work, img, "qcow2", "-r", "-A",
            "--trace", "nbd_co_send_extents")) {
            assertEquals(2L << 20, run(repo, "full", null, QemuImages.uriOf(q)));
            Path log = work.resolve(QemuImages.socketOf(q).getFileName() + ".log");
            Matcher m = Pattern.compile("context = 0 \\(extents cover (\\d+) bytes")
                .matcher(java.nio.file.Files.readString(log));
            List<Long> covered = new java.util.ArrayList<>();
            while (m.find()) {
                covered.add(Long.parseLong(m.group(1)));
            }
            assertEquals(List.of(8L << 30), covered, "base:allocation replies, one per request");
        }
        Path out = work.resolve("big.raw");
        Cli.run("restore", "--repo", repo.toString(), "--disk", "vda", "--to", out.toString()).ok();
        assertEquals(Proc.sha256(QemuImages.toRaw(img, work.resolve("want.raw"))), Proc.sha256(out));
    }

    /** What a traced qemu-nbd 10 sent: bytes covered by the bitmap's replies and by the others', and bytes read. */
    record Traced(long bitmapBytes, long allocationBytes, long bytesRead) {}

    private static Traced traced(Path work, Path repo, Path img, String kind, String bitmap, String qemuNbd)
        throws Exception {
        List<String> args = new java.util.ArrayList<>(List.of("-r", "-A", "--trace", "nbd_co_send_extents"));
        if (bitmap != null) {
            args.addAll(List.of("-B", bitmap));
        }
        try (Proc.Background q = QemuImages.qemuNbd(qemuNbd, work, img, "qcow2", args.toArray(String[]::new))) {
            long read = run(repo, kind, bitmap, QemuImages.uriOf(q));
            Path log = work.resolve(QemuImages.socketOf(q).getFileName() + ".log");
            // the dirty bitmap is the context after base:allocation (0) and qemu:allocation-depth (1) in qemu-nbd
            Matcher m = Pattern.compile("context = (\\d+) \\(extents cover (\\d+) bytes")
                .matcher(java.nio.file.Files.readString(log));
            long bitmapBytes = 0;
            long allocationBytes = 0;
            while (m.find()) {
                if (Integer.parseInt(m.group(1)) >= 2) {
                    bitmapBytes += Long.parseLong(m.group(2));
                } else {
                    allocationBytes += Long.parseLong(m.group(2));
                }
            }
            // two allocation contexts per request: count the bytes of one
            return new Traced(bitmapBytes, allocationBytes / 2, read);
        }
    }

    private static long backup(Path repo, Path img, String kind, String bitmap, String qemuNbd, Path work) {
        List<String> args = new java.util.ArrayList<>(List.of("-r", "-A"));
        if (bitmap != null) {
            args.addAll(List.of("-B", bitmap));
        }
        try (Proc.Background q = QemuImages.qemuNbd(qemuNbd, work, img, "qcow2", args.toArray(String[]::new))) {
            return run(repo, kind, bitmap, QemuImages.uriOf(q));
        }
    }

    private static long run(Path repo, String kind, String bitmap, String uri) {
        List<String> cmd = new java.util.ArrayList<>(List.of(kind, "--repo", repo.toString(), "--disk", "vda",
            "--source", uri, "--json"));
        if (bitmap != null) {
            cmd.addAll(List.of("--bitmap", bitmap));
        }
        JsonNode j = Cli.run(cmd.toArray(String[]::new)).ok().json();
        assertEquals(kind, j.get("disks").get(0).get("type").asText(), j.toString());
        return j.get("disks").get(0).get("bytesRead").asLong();
    }
}
