package io.jbackup.engine;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.jbackup.model.BackupInfo;
import io.jbackup.nbd.server.ServerConfig;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Repository;
import io.jbackup.testutil.Proc;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code jbackup serve} of a chain of real backups (full + two incrementals of a qcow2 with bitmaps, discards and
 * zero writes in between; {@link BackupChain}) read by real clients: for every backup, {@code nbdinfo --map}
 * reports exactly the zero chunks as hole+zero, {@code nbdcopy} and {@code qemu-img convert} produce the raw
 * snapshot of the source at that point (SHA-256), {@code qemu-img compare} agrees, {@code qemu-io -r} pattern
 * reads hold and a python3-libnbd client keeps 64 reads in flight with correct data; {@code nbdinfo --list} and
 * {@code qemu-nbd --list} show every export with its description.
 */
class ServeInteropTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    static Path dir;
    static BackupChain chain;
    static Repository repo;
    static BackupServer server;
    static Path sock;

    @BeforeAll
    static void start() throws IOException {
        chain = BackupChain.build(dir);
        repo = Repository.open(chain.repo(), OpenOptions.defaults());
        sock = dir.resolve("serve.sock");
        server = BackupServer.start(repo, ServerConfig.builder().unixSocket(sock).build(),
            BackupServer.Options.readOnly(4L << 20, 4)); // a small cache: evictions happen
    }

    @AfterAll
    static void stop() {
        if (server != null) {
            server.close();
        }
        if (repo != null) {
            repo.close();
        }
        assertFalse(Files.exists(sock), "the socket is removed at shutdown");
    }

    private static String uri(String export) {
        return "nbd+unix:///" + export + "?socket=" + sock;
    }

    private static String export(int i) {
        return "vda@" + chain.ids().get(i);
    }

    @Test
    void listsEveryBackupAndLatestWithDescriptions() throws IOException {
        JsonNode j = JSON.readTree(Proc.run("nbdinfo", "--json", "--list", uri("")));
        List<String> names = new ArrayList<>();
        for (JsonNode e : j.get("exports")) {
            names.add(e.get("export-name").asText());
            String d = e.get("description").asText();
            assertTrue(d.contains("backup of vda taken") && d.contains(BackupChain.SIZE + " bytes"), d);
            assertEquals(BackupChain.SIZE, e.get("export-size").asLong());
            assertTrue(e.get("is_read_only").asBoolean());
            assertTrue(e.get("can_multi_conn").asBoolean());
        }
        List<String> expected = new ArrayList<>(List.of("vda@latest"));
        for (int i = 0; i < chain.ids().size(); i++) {
            expected.add(export(i));
        }
        assertEquals(expected, names);
        assertTrue(j.get("exports").get(1).get("description").asText().startsWith("full backup"));
        assertTrue(j.get("exports").get(2).get("description").asText().startsWith("incremental backup"));

        String q = Proc.run("qemu-nbd", "--list", "-k", sock.toString());
        assertTrue(q.contains("exports available: 4"), q);
        for (String n : expected) {
            assertTrue(q.contains("export: '" + n + "'"), q);
        }
        assertTrue(q.contains("description: incremental backup of vda"), q);
        assertTrue(q.contains("base:allocation"), q);
    }

    @Test
    void everyBackupReadsAsItsSnapshotWithNbdcopyAndQemuImg() {
        for (int i = 0; i < chain.ids().size(); i++) {
            Path snap = chain.snapshots().get(i);
            String want = Proc.sha256(snap);
            Path copy = dir.resolve("nbdcopy" + i + ".raw");
            Proc.run("nbdcopy", uri(export(i)), copy.toString());
            assertEquals(want, Proc.sha256(copy), "nbdcopy of backup " + i);

            Path conv = dir.resolve("convert" + i + ".raw");
            Proc.run("qemu-img", "convert", "-f", "raw", "-O", "raw", uri(export(i)), conv.toString());
            assertEquals(want, Proc.sha256(conv), "qemu-img convert of backup " + i);
            String cmp = Proc.run("qemu-img", "compare", "-f", "raw", "-F", "raw", uri(export(i)), snap.toString());
            assertTrue(cmp.contains("Images are identical"), cmp);
        }
        // latest is the last backup; a snapshot of another state differs (the comparison can fail)
        Proc.Result diff = Proc.exec(java.time.Duration.ofSeconds(60), "qemu-img", "compare", "-f", "raw", "-F", "raw",
            uri("vda@latest"), chain.snapshots().get(0).toString());
        assertEquals(1, diff.exitCode(), diff.toString());
        assertTrue(diff.stdout().contains("Content mismatch"), diff.toString());
        String cmp = Proc.run("qemu-img", "compare", "-f", "raw", "-F", "raw", uri("vda@latest"),
            chain.snapshots().get(2).toString());
        assertTrue(cmp.contains("Images are identical"), cmp);
    }

    @Test
    void aQcow2OverlayOnTheBackupExportTakesWritesLikeAVmDisk() throws IOException {
        // instant recovery without --writable: qemu keeps the VM's writes in its own qcow2 on top of the backup
        Path top = dir.resolve("vm-changes.qcow2");
        Proc.run("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", uri(export(1)), top.toString());
        Proc.run("qemu-io", "-f", "qcow2", "-c", "write -P 0x99 1M 64k", top.toString());
        String io = Proc.run("qemu-io", "-r", "-f", "qcow2", "-c", "read -P 0x99 1M 64k", "-c", "read -P 0x55 12M 1M",
            "-c", "read -P 0x44 100k 4k", top.toString());
        assertFalse(io.contains("verification failed"), io);
        Path expected = dir.resolve("vm-expected.raw");
        Files.copy(chain.snapshots().get(1), expected);
        Proc.run("qemu-io", "-f", "raw", "-c", "write -P 0x99 1M 64k", expected.toString());
        String cmp = Proc.run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", top.toString(), expected.toString());
        assertTrue(cmp.contains("Images are identical"), cmp);
    }

    @Test
    void mapReportsExactlyTheZeroChunksAsHoleAndZero() throws IOException {
        for (int i = 0; i < chain.ids().size(); i++) {
            JsonNode map = JSON.readTree(Proc.run("nbdinfo", "--json", "--map", uri(export(i))));
            List<long[]> got = new ArrayList<>();
            for (JsonNode e : map) {
                append(got, e.get("offset").asLong(), e.get("length").asLong(), e.get("type").asInt());
            }
            assertEquals(render(expectedMap(chain.snapshots().get(i), 64 << 10)), render(got), "backup " + i);
            assertTrue(got.stream().anyMatch(e -> e[2] == 3) && got.stream().anyMatch(e -> e[2] == 0));
        }
    }

    /** Extents a chunk-granular backup of {@code raw} must report: 3 (hole|zero) for all-zero chunks, else 0. */
    static List<long[]> expectedMap(Path raw, int chunk) throws IOException {
        byte[] b = Files.readAllBytes(raw);
        List<long[]> out = new ArrayList<>();
        for (int off = 0; off < b.length; off += chunk) {
            int end = Math.min(b.length, off + chunk);
            boolean zero = true;
            for (int k = off; k < end && zero; k++) {
                zero = b[k] == 0;
            }
            append(out, off, end - off, zero ? 3 : 0);
        }
        return out;
    }

    private static void append(List<long[]> l, long off, long len, int type) {
        if (!l.isEmpty() && l.get(l.size() - 1)[2] == type && l.get(l.size() - 1)[0] + l.get(l.size() - 1)[1] == off) {
            l.get(l.size() - 1)[1] += len;
        } else {
            l.add(new long[] {off, len, type});
        }
    }

    private static String render(List<long[]> l) {
        StringBuilder sb = new StringBuilder();
        for (long[] e : l) {
            sb.append(e[0]).append('+').append(e[1]).append(':').append(e[2]).append('\n');
        }
        return sb.toString();
    }

    @Test
    void qemuIoPatternReads() {
        for (int i = 0; i < chain.ids().size(); i++) {
            List<String> cmd = new ArrayList<>(List.of("qemu-io", "-r", "-f", "raw"));
            for (String c : chain.qemuIo().get(i)) {
                cmd.add("-c");
                cmd.add(c);
            }
            cmd.add(uri(export(i)));
            String out = Proc.run(cmd.toArray(String[]::new));
            assertFalse(out.contains("verification failed"), "backup " + i + ": " + out);
            assertEquals(chain.qemuIo().get(i).size(), out.lines().filter(l -> l.startsWith("read ")).count(), out);
        }
        // a pattern that does not hold fails qemu-io (the check can fail)
        Proc.Result bad = Proc.exec(java.time.Duration.ofSeconds(30), "qemu-io", "-r", "-f", "raw", "-c",
            "read -P 0x11 0 64k", uri(export(2)));
        assertTrue(bad.exitCode() != 0 && bad.stdout().contains("verification failed"), bad.toString());
    }

    @Test
    void libnbdKeeps64ReadsInFlightWithCorrectData() throws IOException {
        Path script = dir.resolve("aio.py");
        Files.writeString(script, String.join("\n",
            "import nbd, sys",
            "h = nbd.NBD()",
            "h.connect_uri(sys.argv[1])",
            "size = h.get_size()",
            "ref = open(sys.argv[2], 'rb').read()",
            "assert len(ref) == size, (len(ref), size)",
            "bufs = []",
            "peak = 0",
            "for i in range(64):",
            "    off = (i * 251 * 1024 + i * 4096) % (size - 200000)",  // unaligned, across chunk borders
            "    n = 65536 + (i % 4) * 40000",
            "    b = nbd.Buffer(n)",
            "    h.aio_pread(b, off)",
            "    bufs.append((off, n, b))",
            "    peak = max(peak, h.aio_in_flight())",
            "while h.aio_in_flight() > 0:",
            "    h.poll(-1)",
            "bad = [off for off, n, b in bufs if b.to_bytearray() != ref[off:off + n]]",
            "print('peak', peak, 'bad', len(bad))",
            "h.shutdown()",
            ""));
        for (int i = 0; i < chain.ids().size(); i++) {
            String out = Proc.run("/usr/bin/python3", script.toString(), uri(export(i)),
                chain.snapshots().get(i).toString());
            assertTrue(out.contains("peak 64 bad 0"), "backup " + i + ": " + out);
        }
    }

    @Test
    void errorsAreEpermForWritesAndEinvalOutOfRangeAndTheServerGoesOn() throws IOException {
        Path script = dir.resolve("errors.py");
        Files.writeString(script, String.join("\n",
            "import nbd, sys, errno",
            "h = nbd.NBD()",
            "h.set_strict_mode(0)",  // let the requests reach the server
            "h.connect_uri(sys.argv[1])",
            "size = h.get_size()",
            "def err(f):",
            "    try:",
            "        f()",
            "        return 'ok'",
            "    except nbd.Error as e:",
            "        return errno.errorcode.get(e.errno, str(e.errno))",
            "print('write', err(lambda: h.pwrite(b'x' * 4096, 0)))",
            "print('zero', err(lambda: h.zero(4096, 0)))",
            "print('trim', err(lambda: h.trim(4096, 0)))",
            "print('beyond', err(lambda: h.pread(4096, size - 1024)))",
            "print('after', len(h.pread(65536, 0)))",
            "h.shutdown()",
            ""));
        String out = Proc.run("/usr/bin/python3", script.toString(), uri(export(0)));
        assertTrue(out.contains("write EPERM") && out.contains("zero EPERM") && out.contains("trim EPERM"), out);
        assertTrue(out.contains("beyond EINVAL") && out.contains("after 65536"), out);
        Proc.Result r = Proc.exec(java.time.Duration.ofSeconds(30), "nbdinfo", uri("vda@nosuchbackup"));
        assertTrue(r.exitCode() != 0 && r.stderr().contains("vda@nosuchbackup"), r.toString());
        assertTrue(Proc.run("nbdinfo", uri("vda@latest")).contains("export-size: " + BackupChain.SIZE));
    }

    @Test
    void exportNamesResolveLikeTheRestoreCommand() throws IOException {
        BackupInfo b = BackupExports.resolve(repo, "vda@" + chain.ids().get(1).substring(0, 20));
        assertEquals(chain.ids().get(1), b == null ? null : b.id());
        assertEquals(chain.ids().get(2), BackupExports.resolve(repo, "vda@latest").id());
        assertEquals(null, BackupExports.resolve(repo, "vdb@latest"));
        assertEquals(null, BackupExports.resolve(repo, "nonsense"));
    }
}
