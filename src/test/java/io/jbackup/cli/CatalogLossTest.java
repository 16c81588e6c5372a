package io.jbackup.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.testutil.TestFiles;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The SQLite catalog deleted, overwritten with garbage at its header, truncated, or given a write-ahead log from
 * another catalog: opening the repository fails naming the file and {@code jbackup repair --rebuild-catalog};
 * that command moves the damaged catalog aside (never deletes it) and gets every backup back: {@code list} shows
 * them all with their labels and notes, and each restores bit-exact (SHA-256 against real qcow2 images).
 */
@Tag("reliability")
class CatalogLossTest {
    static final long SEED = 0x5EED_0C47L;

    @TempDir
    static Path dir;
    static Path base;
    static List<String> ids = new ArrayList<>();
    static List<String> sums = new ArrayList<>();
    static String listed;

    @BeforeAll
    static void build() throws IOException {
        byte[] data = new byte[2 << 20];
        new Random(SEED).nextBytes(data);
        Path raw = Files.write(dir.resolve("src.raw"), data);
        Path img = dir.resolve("disk.qcow2");
        Proc.run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw.toString(), img.toString());
        base = dir.resolve("base");
        Cli.run("init", "--repo", base.toString(), "--chunk-size", "64K", "--pack-size", "1M").ok();
        for (int v = 0; v < 3; v++) {
            if (v > 0) {
                QemuImages.io(img, "qcow2", "write -P 0x" + (v + 1) + "0 " + (v * 256) + "k 128k");
            }
            try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r")) {
                ids.add(Cli.run("full", "--repo", base.toString(), "--vm", "web", "--disk", "vda", "--source",
                    QemuImages.uriOf(s), "--label", "version=" + v, "--label", "set=s" + v, "--note", "note " + v,
                    "--json").ok().json().get("disks").get(0).get("backupId").asText());
            }
            sums.add(Proc.sha256(QemuImages.toRaw(img, dir.resolve("snap" + v + ".raw"))));
        }
        listed = normalize(Cli.run("list", "--repo", base.toString(), "--json").ok().json());
    }

    /** The backups as list shows them, without fields a rebuild cannot know (when a verify last ran). */
    private static String normalize(JsonNode list) {
        Map<String, String> m = new TreeMap<>();
        for (JsonNode b : list.has("backups") ? list.get("backups") : list) {
            ((com.fasterxml.jackson.databind.node.ObjectNode) b).remove(List.of("verified", "verifiedSample"));
            m.put(b.get("id").asText(), b.toString());
        }
        return m.toString();
    }

    @Test
    void deleted() throws IOException {
        Path repo = copy("deleted");
        for (String f : List.of("catalog.db", "catalog.db-wal", "catalog.db-shm")) {
            Files.deleteIfExists(repo.resolve(f));
        }
        refusedThenRebuilt(repo, false);
    }

    @Test
    void garbageOverTheHeader() throws IOException {
        Path repo = copy("garbage");
        byte[] junk = new byte[4096];
        new Random(SEED).nextBytes(junk);
        try (FileChannel ch = FileChannel.open(repo.resolve("catalog.db"), StandardOpenOption.WRITE)) {
            ch.write(java.nio.ByteBuffer.wrap(junk), 0);
        }
        refusedThenRebuilt(repo, true);
    }

    @Test
    void truncated() throws IOException {
        Path repo = copy("truncated");
        Path db = repo.resolve("catalog.db");
        try (FileChannel ch = FileChannel.open(db, StandardOpenOption.WRITE)) {
            ch.truncate(ch.size() / 3);
        }
        refusedThenRebuilt(repo, true);
    }

    /**
     * A write-ahead log of another repository's catalog, captured while sqlite3 holds it open, put next to this
     * catalog. SQLite applies a WAL without knowing whose it is; here it rewrites the meta page, so the catalog
     * now claims another repository's id, and jbackup refuses it.
     */
    @Test
    void writeAheadLogOfAnotherCatalog() throws Exception {
        Path repo = copy("wal");
        Files.copy(foreignWal("INSERT INTO meta (key, value) VALUES ('junk', 'x');"), repo.resolve("catalog.db-wal"));
        refusedThenRebuilt(repo, true);
    }

    /** A foreign WAL that only adds a table jbackup does not use leaves every row intact: the catalog works. */
    @Test
    void harmlessWriteAheadLogOfAnotherCatalog() throws Exception {
        Path repo = copy("wal2");
        Files.copy(foreignWal(""), repo.resolve("catalog.db-wal"));
        assertEquals(listed, normalize(Cli.run("list", "--repo", repo.toString(), "--json").ok().json()));
        assertEquals(0, Cli.run("verify", "--repo", repo.toString()).exitCode());
    }

    private static Path foreignWal(String sql) throws Exception {
        Proc.requireTool("sqlite3");
        Path other = dir.resolve("other-" + System.nanoTime());
        Cli.run("init", "--repo", other.toString()).ok();
        Path otherDb = other.resolve("catalog.db");
        Path wal = other.resolve("catalog.db-wal");
        Path copy = dir.resolve(other.getFileName() + ".wal");
        Path script = Files.writeString(dir.resolve(other.getFileName() + ".sql"), "PRAGMA journal_mode=WAL; " + sql
            + " CREATE TABLE junk(x); INSERT INTO junk VALUES (randomblob(100000));\n");
        try (Proc.Background holder = Proc.start(dir.resolve(other.getFileName() + ".log"), "sh", "-c",
            "(cat " + script + "; sleep 30) | sqlite3 " + otherDb)) {
            for (int i = 0; i < 200 && (!Files.exists(wal) || Files.size(wal) < 100_000); i++) {
                Thread.sleep(50);
            }
            Thread.sleep(100);
            assertTrue(Files.size(wal) >= 100_000, "sqlite3 wrote its transaction to the WAL");
            Files.copy(wal, copy);
        }
        return copy;
    }

    private void refusedThenRebuilt(Path repo, boolean moved) throws IOException {
        String r = repo.toString();
        Cli.Result list = Cli.run("list", "--repo", r);
        assertEquals(5, list.exitCode(), list.toString());
        assertTrue(list.stderr().contains(repo.resolve("catalog.db").toString())
            && list.stderr().contains("jbackup repair --rebuild-catalog"), list.stderr());
        Map<String, String> before = files(repo);

        JsonNode rebuilt = Cli.run("repair", "--repo", r, "--rebuild-catalog", "--json").ok().json();
        assertEquals(3, rebuilt.get("backups").asInt(), rebuilt.toString());
        if (moved) {
            Path aside = Path.of(rebuilt.get("oldCatalog").asText());
            assertTrue(aside.getFileName().toString().startsWith("catalog.db.old-"), aside.toString());
            assertEquals(before.get("catalog.db"), files(repo).get(aside.getFileName().toString()),
                "the damaged catalog is kept, byte for byte");
        }
        assertEquals(listed, normalize(Cli.run("list", "--repo", r, "--json").ok().json()),
            "every backup back, with labels and notes");
        for (int v = 0; v < ids.size(); v++) {
            Path out = repo.resolveSibling(repo.getFileName() + "-" + v + ".raw");
            Cli.run("restore", "--repo", r, "--disk", "vda", "--vm", "web", "--backup", ids.get(v), "--to",
                out.toString()).ok();
            assertEquals(sums.get(v), Proc.sha256(out), "backup " + ids.get(v));
        }
        assertEquals(0, Cli.run("verify", "--repo", r).exitCode());
        assertFalse(Cli.run("list", "--repo", r).stdout().isEmpty());
    }

    private static Map<String, String> files(Path repo) throws IOException {
        Map<String, String> m = new TreeMap<>();
        try (Stream<Path> s = Files.list(repo)) {
            s.filter(Files::isRegularFile).forEach(p -> m.put(p.getFileName().toString(), Proc.sha256(p)));
        }
        return m;
    }

    private static Path copy(String name) throws IOException {
        return TestFiles.copyTree(base, dir.resolve(name).resolve("repo"));
    }
}
