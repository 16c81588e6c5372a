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
}
