package io.jbackup.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.catalog.ChunkLocation;
import io.jbackup.store.BackupReader;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Repository;
import io.jbackup.testutil.TestFiles;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Damage on disk, end to end through the CLI with real images: a byte flipped in a chunk payload, a pack truncated
 * mid-record and in its footer, an index file with a flipped byte or truncated, a pack deleted. For each case, on a
 * fresh copy of one repository: {@code verify} names every damaged chunk (pack and offset) with every backup and
 * disk offset that uses it and exits 6; {@code restore} refuses naming the backup and disk offset (exit 6), or with
 * {@code --ignore-errors} writes zeros there, lists exactly those ranges and is bit-exact elsewhere (exit 3); then
 * backups that read the same data again heal the damaged chunks: the old backups restore bit-exact and verify
 * (after {@code --repair} rewrote damaged pack footers) is clean. A damaged index cannot be healed by a backup: the
 * new backup restores bit-exact, and verify keeps naming the damaged index.
 *
 * <p>Where to damage comes from {@link #SEED}; several positions per kind.
 */
@Tag("reliability")
class OnDiskDamageTest {
    static final long SEED = 0x5EED_0008L;
    static final int CS = 64 * 1024;
    static final int CHUNKS = 48;
    static final int RECORD_HEADER = 52;

    @TempDir
    static Path dir;
    static Path base;
    static Path image;
    static List<String> ids = new ArrayList<>();
    static List<Path> snaps = new ArrayList<>();
    /** digest hex to (backup id to disk offsets that use it). */
    static Map<String, Map<String, Set<Long>>> uses = new HashMap<>();
    static Map<String, ChunkLocation> locations = new HashMap<>();
    /** backup id to its digests by position (hex; null for a zero chunk). */
    static Map<String, String[]> maps = new HashMap<>();
    static int casesRun;

    @BeforeAll
    static void build() throws IOException {
        Proc.requireTool("qemu-img");
        Proc.requireTool("qemu-nbd");
        Proc.requireTool("qemu-io");
        // 3 MiB of incompressible data with two zero chunks, as a qcow2 image
        byte[] data = new byte[CHUNKS * CS];
        new Random(SEED).nextBytes(data);
        java.util.Arrays.fill(data, 5 * CS, 7 * CS, (byte) 0);
        Path raw = Files.write(dir.resolve("src.raw"), data);
        image = dir.resolve("disk.qcow2");
        Proc.run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw.toString(), image.toString());
        base = dir.resolve("base");
        Cli.run("init", "--repo", base.toString(), "--chunk-size", "64K", "--pack-size", "1M").ok();
        ids.add(backup(base, image, "qcow2"));
        snaps.add(QemuImages.toRaw(image, dir.resolve("snap0.raw")));
        QemuImages.io(image, "qcow2", "write -P 0x5a 640k 64k", "write -P 0x6b 1284k 4k", "write -z 2M 64k");
        ids.add(backup(base, image, "qcow2"));
        snaps.add(QemuImages.toRaw(image, dir.resolve("snap1.raw")));
        try (Repository r = Repository.open(base, OpenOptions.defaults())) {
            for (String id : ids) {
                try (BackupReader br = r.openBackup(id)) {
                    String[] m = new String[(int) br.chunkCount()];
                    for (int i = 0; i < m.length; i++) {
                        if (!br.isZero(i)) {
                            m[i] = HexFormat.of().formatHex(br.digest(i));
                            uses.computeIfAbsent(m[i], k -> new TreeMap<>()).computeIfAbsent(id, k -> new TreeSet<>())
                                .add((long) i * CS);
                            locations.put(m[i], r.chunkLocation(br.digest(i)));
                        }
                    }
                    maps.put(id, m);
                }
            }
        }
        assertTrue(locations.values().stream().map(ChunkLocation::pack).distinct().count() >= 3, "several packs");
    }

    private static String backup(Path repo, Path img, String format) {
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, format, "-r")) {
            return Cli.run("full", "--repo", repo.toString(), "--disk", "vda", "--source", QemuImages.uriOf(s), "--json")
                .ok().json().get("disks").get(0).get("backupId").asText();
        }
    }

    /** What a case damaged: chunks (by digest), a pack footer, an index (backup id and its lost positions). */
    private record Damage(String what, Set<String> chunks, String footerPack, String index, Set<Long> lostOffsets) {
        static Damage chunks(String what, Set<String> c, String footerPack) {
            return new Damage(what, c, footerPack, null, Set.of());
        }
    }

    @Test
    void everyKindOfDamageIsNamedRefusedSalvagedAndHealed() throws Exception {
        Random rnd = new Random(SEED);
        List<String> digests = new ArrayList<>(new TreeSet<>(locations.keySet()));
        List<String> packs = new ArrayList<>(new TreeSet<>(locations.values().stream().map(ChunkLocation::pack).toList()));
        int n = 0;
        // (a) a byte flipped in a chunk payload, 3 positions
        for (int k = 0; k < 3; k++) {
            Path repo = copy(n++);
            String d = digests.get(rnd.nextInt(digests.size()));
            ChunkLocation loc = locations.get(d);
            long at = loc.offset() + RECORD_HEADER + rnd.nextInt(loc.length() - RECORD_HEADER);
            flip(packFile(repo, loc.pack()), at, rnd);
            check(repo, Damage.chunks("payload byte flipped at " + at, Set.of(d), null));
        }
        // (b) a pack truncated mid-record (2) and inside its footer (2)
        for (int k = 0; k < 4; k++) {
            Path repo = copy(n++);
            String pack = packs.get(rnd.nextInt(packs.size()));
            Path file = packFile(repo, pack);
            List<String> in = digests.stream().filter(d -> locations.get(d).pack().equals(pack)).toList();
            long footer = in.stream().mapToLong(d -> locations.get(d).offset() + locations.get(d).length()).max()
                .orElseThrow();
            long cut;
            if (k < 2) {
                ChunkLocation victim = locations.get(in.get(rnd.nextInt(in.size())));
                cut = victim.offset() + 1 + rnd.nextInt(victim.length() - 1);
            } else {
                cut = footer + rnd.nextInt((int) (Files.size(file) - footer));
            }
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
                ch.truncate(cut);
            }
            Set<String> lost = new TreeSet<>();
            for (String d : in) {
                if (locations.get(d).offset() + locations.get(d).length() > cut) {
                    lost.add(d);
                }
            }
            check(repo, Damage.chunks("pack truncated at " + cut + (k < 2 ? " (mid-record)" : " (footer)"), lost,
                file.toString()));
        }
        // (c) an index with a byte flipped (2) or truncated (1)
        for (int k = 0; k < 3; k++) {
            Path repo = copy(n++);
            String id = ids.get(rnd.nextInt(ids.size()));
            Path idx = repo.resolve("indexes").resolve(id + ".idx");
            long size = Files.size(idx);
            Set<Long> lost = new TreeSet<>();
            String what;
            if (k < 2) {
                // one flip in the entries, one anywhere
                long at = k == 0 ? 64 + rnd.nextInt(CHUNKS * 32) : rnd.nextInt((int) size);
                flip(idx, at, rnd);
                if (at >= 64 && at < 64 + CHUNKS * 32L) {
                    lost.add((at - 64) / 32 * CS);
                }
                what = "index byte flipped at " + at;
            } else {
                long cut = rnd.nextInt((int) size);
                try (FileChannel ch = FileChannel.open(idx, StandardOpenOption.WRITE)) {
                    ch.truncate(cut);
                }
                for (long i = Math.max(0, Math.min(CHUNKS, (cut - 64) / 32)); i < CHUNKS; i++) {
                    lost.add(i * CS);
                }
                what = "index truncated at " + cut;
            }
            check(repo, new Damage(what, Set.of(), null, id, lost));
        }
        // (d) a pack deleted
        {
            Path repo = copy(n++);
            String pack = packs.get(rnd.nextInt(packs.size()));
            Files.delete(packFile(repo, pack));
            check(repo, Damage.chunks("pack deleted", new TreeSet<>(digests.stream()
                .filter(d -> locations.get(d).pack().equals(pack)).toList()), null));
        }
        assertEquals(11, casesRun);
        // (e) an index deleted: damage to restore as to verify (exit 6), naming the file; the others restore
        {
            Path repo = copy(n++);
            String id = ids.get(rnd.nextInt(ids.size()));
            Files.delete(repo.resolve("indexes").resolve(id + ".idx"));
            Cli.Result v = Cli.run("verify", "--repo", repo.toString(), "--json");
            assertEquals(6, v.exitCode(), v.toString());
            assertEquals(id, v.json().get("damagedIndexes").get(0).get("backupId").asText(), v.stdout());
            Path out = repo.resolveSibling("deleted-index.raw");
            Cli.Result stop = Cli.run("restore", "--repo", repo.toString(), "--disk", "vda", "--backup", id, "--to",
                out.toString(), "--json");
            assertEquals(6, stop.exitCode(), stop.toString());
            assertEquals("damage", stop.json().get("error").get("code").asText(), stop.toString());
            assertTrue(stop.json().get("error").get("message").asText().contains(id + ".idx"), stop.toString());
            assertFalse(Files.exists(out), "nothing written");
            int other = (ids.indexOf(id) + 1) % ids.size();
            Cli.run("restore", "--repo", repo.toString(), "--disk", "vda", "--backup", ids.get(other), "--to",
                out.toString()).ok();
            assertEquals(Proc.sha256(snaps.get(other)), Proc.sha256(out), "another backup is intact");
        }
    }

    private void check(Path repo, Damage dmg) throws Exception {
        String r = repo.toString();
        String ctx = dmg.what() + " in " + repo.getFileName();
        // verify names every damaged chunk with its pack and offset, and every backup and disk offset using it
        Cli.Result v = Cli.run("verify", "--repo", r, "--json");
        assertEquals(6, v.exitCode(), ctx + ": " + v);
        JsonNode j = v.json();
        assertEquals("damaged", j.get("status").asText(), ctx);
        Map<String, Map<String, Set<Long>>> named = new TreeMap<>();
        for (JsonNode c : j.get("damagedChunks")) {
            String d = c.get("digest").asText();
            ChunkLocation loc = locations.get(d);
            assertEquals(packFile(repo, loc.pack()).toString(), c.get("pack").asText(), ctx);
            assertEquals(loc.offset(), c.get("packOffset").asLong(), ctx);
            for (JsonNode u : c.get("uses")) {
                named.computeIfAbsent(d, x -> new TreeMap<>()).computeIfAbsent(u.get("backupId").asText(),
                    x -> new TreeSet<>()).add(u.get("diskOffset").asLong());
            }
        }
        Map<String, Map<String, Set<Long>>> expected = new TreeMap<>();
        dmg.chunks().forEach(d -> expected.put(d, uses.get(d)));
        assertEquals(expected, named, ctx + ": " + v.stdout());
        assertEquals(dmg.index() == null ? 0 : 1, j.get("damagedIndexes").size(), ctx + ": " + v.stdout());
        if (dmg.index() != null) {
            assertEquals(dmg.index(), j.get("damagedIndexes").get(0).get("backupId").asText(), ctx);
        }
        assertEquals(dmg.footerPack() == null ? 0 : 1, j.get("damagedPacks").size(), ctx + ": " + v.stdout());

        // restore: refused with the backup and disk offset, or zero-filled and listed with --ignore-errors
        for (int b = 0; b < ids.size(); b++) {
            String id = ids.get(b);
            Set<Long> bad = new TreeSet<>();
            dmg.chunks().forEach(d -> bad.addAll(uses.get(d).getOrDefault(id, Set.of())));
            boolean indexDamaged = id.equals(dmg.index());
            if (indexDamaged) {
                bad.addAll(dmg.lostOffsets());
            }
            Path out = repo.resolveSibling(repo.getFileName() + "-" + b + ".raw");
            if (bad.isEmpty() && !indexDamaged) {
                Cli.run("restore", "--repo", r, "--disk", "vda", "--backup", id, "--to", out.toString()).ok();
                assertEquals(Proc.sha256(snaps.get(b)), Proc.sha256(out), ctx + ": backup " + id + " is intact");
                Files.delete(out);
                continue;
            }
            Cli.Result stop = Cli.run("restore", "--repo", r, "--disk", "vda", "--backup", id, "--to", out.toString());
            assertEquals(6, stop.exitCode(), ctx + ": " + stop);
            assertTrue(indexDamaged ? stop.stderr().contains(id + ".idx")
                : stop.stderr().contains("backup " + id) && bad.stream().anyMatch(o -> stop.stderr()
                    .contains("disk offset " + o + ",")), ctx + ": " + stop.stderr());
            Files.deleteIfExists(out);
            Cli.Result partial = Cli.run("restore", "--repo", r, "--disk", "vda", "--backup", id, "--to",
                out.toString(), "--ignore-errors", "--json");
            assertEquals(bad.isEmpty() ? 0 : 3, partial.exitCode(), ctx + ": " + partial);
            Set<Long> listed = new TreeSet<>();
            for (JsonNode d : partial.json().get("disks").get(0).get("damaged")) {
                listed.add(d.get("offset").asLong());
                assertEquals(CS, d.get("length").asLong());
            }
            assertEquals(bad, listed, ctx + ": backup " + id);
            byte[] want = Files.readAllBytes(snaps.get(b));
            for (long o : bad) {
                java.util.Arrays.fill(want, (int) o, (int) o + CS, (byte) 0);
            }
            assertTrue(java.util.Arrays.equals(want, Files.readAllBytes(out)), ctx + ": zeros where damaged, "
                + "the backup elsewhere");
            Files.delete(out);
        }

        // heal: backups that read the same data again
        Path snap0 = snaps.get(0);
        List<String> healed = List.of(backup(repo, snap0, "raw"), backup(repo, image, "qcow2"));
        if (dmg.footerPack() != null) {
            Cli.Result rep = Cli.run("verify", "--repo", r, "--repair", "--json");
            assertEquals(6, rep.exitCode(), ctx + ": " + rep);
            assertEquals(1, rep.json().get("packsRewritten").asInt(), ctx + ": " + rep.stdout());
        }
        Cli.Result after = Cli.run("verify", "--repo", r, "--json");
        if (dmg.index() == null) {
            assertEquals(0, after.exitCode(), ctx + ": healed, " + after);
        } else {
            assertEquals(6, after.exitCode(), ctx + ": " + after);
            assertEquals(0, after.json().get("damagedChunks").size(), ctx + ": " + after.stdout());
            assertEquals(1, after.json().get("damagedIndexes").size(), ctx + ": " + after.stdout());
        }
        for (int b = 0; b < ids.size(); b++) {
            for (String id : List.of(ids.get(b), healed.get(b))) {
                if (id.equals(dmg.index())) {
                    continue;
                }
                Path out = repo.resolveSibling(repo.getFileName() + "-healed.raw");
                Cli.run("restore", "--repo", r, "--disk", "vda", "--backup", id, "--to", out.toString()).ok();
                assertEquals(Proc.sha256(snaps.get(b)), Proc.sha256(out), ctx + ": backup " + id + " after healing");
                Files.delete(out);
            }
        }
        casesRun++;
    }

    private static Path copy(int n) throws IOException {
        return TestFiles.copyTree(base, dir.resolve("case" + n).resolve("repo"));
    }

    private static Path packFile(Path repo, String pack) {
        return repo.resolve("packs").resolve(pack.substring(0, 2)).resolve(pack + ".pack");
    }

    private static void flip(Path file, long at, Random rnd) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.seek(at);
            int v = f.read();
            f.seek(at);
            f.write(v ^ (1 << rnd.nextInt(8)));
        }
    }

}
