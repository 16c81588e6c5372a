package io.jbackup.engine;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import io.jbackup.testutil.S3Proxy;
import io.jbackup.testutil.TestJvm;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.services.s3.model.S3Object;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The end-to-end tests of a local repository, against an {@code s3://} repository on a real s3proxy, through the CLI
 * as a user runs it: the {@link BackupChain} (full, incrementals with discards and zero writes) restores bit-exact
 * from a fresh cache directory; {@code serve} of the bucket is read bit-exact by {@code nbdcopy} and
 * {@code qemu-img convert}; {@code verify} names a damaged pack object and exits 6; list, show, stats, protect,
 * forget, prune and gc work on the bucket; and the dataset chain of {@link DatasetEndToEndTest} when a dataset is
 * given. Credentials come from the AWS default chain (system properties in this JVM, environment in a child JVM).
 */
class S3EndToEndTest {
    static final String BUCKET = "jbackup-s3-e2e";
    static final String PASS = "s3 end to end passphrase 7f3a";

    @TempDir
    static Path dir;
    static S3Proxy server;
    static Path passFile;
    static BackupChain chain;

    @BeforeAll
    static void startServerAndBuildTheChain() throws IOException {
        server = S3Proxy.start(Files.createDirectories(dir.resolve("s3"))).withDefaultCredentials();
        server.createBucket(BUCKET);
        passFile = Files.writeString(dir.resolve("pass"), PASS + "\n");
        List<String> args = repoArgs("chain", "cache");
        init(args);
        chain = BackupChain.build(Files.createDirectories(dir.resolve("chain")), null, args);
    }

    @AfterAll
    static void stopServer() {
        if (server != null) {
            server.close();
        }
    }

    /** {@code --repo s3://BUCKET/PREFIX} with this server's endpoint, a cache directory and the passphrase file. */
    static List<String> repoArgs(String prefix, String cache) {
        return List.of("--repo", "s3://" + BUCKET + "/" + prefix, "--s3-endpoint", server.endpoint().toString(),
            "--s3-region", "us-east-1", "--cache-dir", dir.resolve(cache).toString(), "--passphrase-file",
            passFile.toString());
    }

    static void init(List<String> repoArgs) {
        List<String> a = new ArrayList<>(List.of("init", "--chunk-size", "64K", "--encryption", "aes-256-gcm"));
        a.addAll(repoArgs);
        Cli.run(a.toArray(String[]::new)).ok();
    }

    static Cli.Result run(List<String> repoArgs, String... args) {
        List<String> a = new ArrayList<>(List.of(args));
        a.addAll(repoArgs);
        return Cli.run(a.toArray(String[]::new));
    }

    private static List<String> objects(String prefix) {
        return server.client().listObjectsV2Paginator(b -> b.bucket(BUCKET).prefix(prefix)).contents().stream()
            .map(S3Object::key).toList();
    }

    private static String backup(List<String> repoArgs, Path img, String disk) {
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r", "-A")) {
            return run(repoArgs, "full", "--vm", "web1", "--disk", disk, "--source", QemuImages.uriOf(s), "--json")
                .ok().json().get("disks").get(0).get("backupId").asText();
        }
    }

    private static String restoreSha(List<String> repoArgs, String id, String name) {
        Path out = dir.resolve(name + ".raw");
        run(repoArgs, "restore", "--vm", "web1", "--disk", "vda", "--backup", id, "--to", out.toString()).ok();
        return Proc.sha256(out);
    }

    @Test
    void backupChainRestoresBitExactFromAFreshCache() {
        assertFalse(objects("chain/manifests/").isEmpty(), "the backups are committed in the bucket");
        List<String> fresh = repoArgs("chain", "fresh-cache");
        JsonNode list = run(fresh, "list", "--json").ok().json();
        assertEquals(3, list.size(), list.toString());
        for (int i = 0; i < chain.ids().size(); i++) {
            Path out = dir.resolve("chain-restore" + i + ".raw");
            run(fresh, "restore", "--disk", "vda", "--backup", chain.ids().get(i), "--to", out.toString()).ok();
            assertEquals(Proc.sha256(chain.snapshots().get(i)), Proc.sha256(out), "backup " + i);
        }
    }

    /** {@code jbackup serve --socket SOCK} of {@code s3://BUCKET/PREFIX} in a child JVM with the cache CACHE. */
    private static Proc.Background serve(String prefix, String cache, Path sock) throws IOException {
        Path log = dir.resolve(prefix + "-serve.log");
        List<String> cmd = new ArrayList<>(TestJvm.java(
            "-cp", System.getProperty("java.class.path"), "io.jbackup.cli.Main", "serve", "--socket", sock.toString(),
            "--repo", "s3://" + BUCKET + "/" + prefix, "--cache-dir", dir.resolve(cache).toString()));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        // what a host's environment gives: endpoint, region, credentials and passphrase
        pb.environment().putAll(java.util.Map.of("AWS_ENDPOINT_URL_S3", server.endpoint().toString(),
            "AWS_REGION", "us-east-1", "AWS_ACCESS_KEY_ID", S3Proxy.IDENTITY, "AWS_SECRET_ACCESS_KEY",
            S3Proxy.CREDENTIAL, "JBACKUP_PASSPHRASE", PASS));
        return new Proc.Background(pb.start(), log, cmd).awaitSocket(sock);
    }

    @Test
    void serveOfTheBucketIsReadBitExactByNbdcopyAndQemuImg() throws Exception {
        Path sock = dir.resolve("serve.sock");
        try (Proc.Background serve = serve("chain", "serve-cache", sock)) {
            for (int i = 0; i < chain.ids().size(); i++) {
                String uri = "nbd+unix:///vda@" + chain.ids().get(i) + "?socket=" + sock;
                String want = Proc.sha256(chain.snapshots().get(i));
                Path copy = dir.resolve("nbdcopy" + i + ".raw");
                Proc.run("nbdcopy", uri, copy.toString());
                assertEquals(want, Proc.sha256(copy), "nbdcopy of backup " + i);
                Path conv = dir.resolve("convert" + i + ".raw");
                Proc.run("qemu-img", "convert", "-f", "raw", "-O", "raw", uri, conv.toString());
                assertEquals(want, Proc.sha256(conv), "qemu-img convert of backup " + i);
            }
        }
    }

    /**
     * A serve runs for days while other hosts back up and forget: it refreshed its cache only when it started, so
     * {@code VM/DISK@latest} stayed the backup of that moment, a new backup was not exported, and a forgotten one
     * still was. Now listing or opening an export refreshes a cache older than {@link BackupExports#REFRESH_AFTER}.
     */
    @Test
    void serveSeesBackupsThatAnotherHostCommitsAndForgetsWhileItRuns() throws Exception {
        List<String> h1 = repoArgs("serve-live", "serve-live-cache1");
        init(h1);
        Path img = QemuImages.qcow2(dir.resolve("serve-live.qcow2"), "4M");
        QemuImages.io(img, "qcow2", "write -P 0x61 0 1M");
        String first = backup(h1, img, "vda");
        Path sock = dir.resolve("serve-live.sock");
        try (Proc.Background serve = serve("serve-live", "serve-live-cache2", sock)) {
            String list = Proc.run("nbdinfo", "--list", "nbd+unix:///?socket=" + sock);
            assertTrue(list.contains("vda@" + first), list);

            QemuImages.io(img, "qcow2", "write -P 0x62 2M 1M");
            String second = backup(h1, img, "vda");
            String want = Proc.sha256(QemuImages.toRaw(img, dir.resolve("serve-live.raw")));
            run(h1, "forget", first).ok();
            Thread.sleep(BackupExports.REFRESH_AFTER.toMillis() + 500);

            Path copy = dir.resolve("serve-live-latest.raw");
            Proc.run("nbdcopy", "nbd+unix:///web1/vda@latest?socket=" + sock, copy.toString());
            assertEquals(want, Proc.sha256(copy), "web1/vda@latest is the backup host 1 committed last");
            list = Proc.run("nbdinfo", "--list", "nbd+unix:///?socket=" + sock);
            assertTrue(list.contains("vda@" + second), list);
            assertFalse(list.contains("vda@" + first), "the backup host 1 forgot is no longer exported: " + list);
        }
    }

    @Test
    void verifyNamesADamagedPackObjectAndExitsSix() {
        List<String> args = repoArgs("damage", "damage-cache");
        init(args);
        Path img = QemuImages.qcow2(dir.resolve("damage.qcow2"), "4M");
        QemuImages.io(img, "qcow2", "write -P 0x5a 0 1M", "write -P 0xa5 2M 512k");
        String id = backup(args, img, "vda");
        assertEquals(0, run(args, "verify").exitCode(), "an intact bucket verifies clean");

        List<String> packs = objects("damage/packs/");
        assertEquals(1, packs.size(), packs.toString());
        String key = packs.get(0);
        byte[] pack = server.client().getObjectAsBytes(b -> b.bucket(BUCKET).key(key)).asByteArray();
        for (int i = 0; i < 16; i++) { // inside the first record's sealed data, past its header
            pack[200 + i] ^= (byte) 0xff;
        }
        server.client().putObject(b -> b.bucket(BUCKET).key(key), RequestBody.fromBytes(pack));

        Cli.Result v = run(args, "verify", "--json");
        assertEquals(6, v.exitCode(), v.toString());
        JsonNode damaged = v.json().get("damagedChunks");
        assertTrue(damaged.size() >= 1, v.stdout());
        String packName = key.substring(key.lastIndexOf('/') + 1, key.length() - ".pack".length());
        assertTrue(damaged.get(0).get("pack").asText().contains(packName), v.stdout());
        assertEquals(id, damaged.get(0).get("uses").get(0).get("backupId").asText(), v.stdout());
        // and a fresh host's cache sees the same damage; restore refuses
        List<String> other = repoArgs("damage", "damage-cache2");
        assertEquals(6, run(other, "verify").exitCode());
        Cli.Result refused = run(other, "restore", "--vm", "web1", "--disk", "vda", "--backup", id, "--to",
            dir.resolve("damage-refused.raw").toString());
        assertEquals(6, refused.exitCode(), refused.toString());

        // a third host refreshes its cache now: it knows the chunk only where it is damaged
        run(repoArgs("damage", "damage-cache3"), "list").ok();

        // heal: the next backup of the same data on this host stores the damaged chunk again
        String sha = Proc.sha256(QemuImages.toRaw(img, dir.resolve("damage.raw")));
        String healed = backup(args, img, "vda");
        Cli.Result after = run(args, "verify", "--json");
        assertEquals(0, after.exitCode(), "healed: " + after);
        // every host reads the intact copy, also the third, whose catalog still points at the damaged one
        for (String cache : List.of("damage-cache3", "damage-cache", "damage-cache4")) {
            List<String> a = repoArgs("damage", cache);
            assertEquals(sha, restoreSha(a, healed, "damage-healed-" + cache), "new backup from " + cache);
            assertEquals(sha, restoreSha(a, id, "damage-old-" + cache), "old backup from " + cache);
        }
        assertEquals(0, run(repoArgs("damage", "damage-cache3"), "verify").exitCode(), "the third host agrees");
    }

    @Test
    void listShowStatsProtectForgetPruneAndGcOnTheBucket() {
        List<String> args = repoArgs("maint", "maint-cache");
        init(args);
        Path img = QemuImages.qcow2(dir.resolve("maint.qcow2"), "4M");
        List<String> ids = new ArrayList<>();
        List<String> shas = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            // each backup has data of its own in [1M, 2M) and shares [0, 512k)
            QemuImages.io(img, "qcow2", "write -P 0x77 0 512k", "write -P " + (0x10 + i) + " 1M 1M");
            ids.add(backup(args, img, "vda"));
            shas.add(Proc.sha256(QemuImages.toRaw(img, dir.resolve("maint" + i + ".raw"))));
        }
        JsonNode list = run(args, "list", "--json").ok().json();
        assertEquals(4, list.size(), list.toString());
        assertEquals(ids.get(2), run(args, "show", ids.get(2), "--json").ok().json().get("id").asText());
        JsonNode stats = run(args, "stats", "--json").ok().json();
        assertEquals(4, stats.get("backups").asLong(), stats.toString());
        assertTrue(stats.get("dedupRatio").asDouble() > 1.0, stats.toString());

        run(args, "protect", ids.get(0), "--reason", "golden").ok();
        JsonNode forgot = run(args, "forget", ids.get(1), "--json").ok().json();
        assertTrue(forgot.toString().contains(ids.get(1)), forgot.toString());
        assertFalse(objects("maint/manifests/").stream().anyMatch(k -> k.contains(ids.get(1))),
            "the manifest of a forgotten backup leaves the bucket");
        JsonNode pruned = run(args, "prune", "--keep-last", "1", "--json").ok().json();
        assertEquals(1, pruned.get("removed").asInt(), pruned.toString()); // ids 2; 0 is protected, 3 is the last
        List<String> left = new ArrayList<>();
        run(args, "list", "--json").ok().json().forEach(n -> left.add(n.get("id").asText()));
        assertEquals(List.of(ids.get(0), ids.get(3)).stream().sorted().toList(), left.stream().sorted().toList());

        JsonNode gc = run(args, "gc", "--grace", "0s", "--repack-threshold", "100", "--json").ok().json();
        assertEquals(2, gc.get("chunksCondemned").asLong(), gc.toString()); // [1M, 2M) of backups 1 and 2
        assertTrue(gc.get("bytesReclaimed").asLong() > 0, gc.toString());
        // from a fresh cache: what is left restores bit-exact and verifies clean
        List<String> fresh = repoArgs("maint", "maint-cache2");
        assertEquals(shas.get(0), restoreSha(fresh, ids.get(0), "maint-r0"));
        assertEquals(shas.get(3), restoreSha(fresh, ids.get(3), "maint-r3"));
        run(fresh, "verify").ok();
    }

    /**
     * Two hosts with their own caches: what one protects, prunes or forgets, the other sees from the bucket even
     * though its cache knew the repository before.
     */
    @Test
    void protectPruneAndForgetOnOneHostAreSeenByAnother() {
        List<String> h1 = repoArgs("hosts", "hosts-cache1");
        List<String> h2 = repoArgs("hosts", "hosts-cache2");
        init(h1);
        Path img = QemuImages.qcow2(dir.resolve("hosts.qcow2"), "4M");
        List<String> ids = new ArrayList<>();
        List<String> shas = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            QemuImages.io(img, "qcow2", "write -P " + (0x30 + i) + " 1M 1M");
            ids.add(backup(h1, img, "vda"));
            shas.add(Proc.sha256(QemuImages.toRaw(img, dir.resolve("hosts" + i + ".raw"))));
        }
        assertEquals(4, run(h2, "list", "--json").ok().json().size());
        assertEquals(4, run(h1, "list", "--json").ok().json().size());

        run(h1, "protect", ids.get(0), "--reason", "golden").ok();
        JsonNode shown = run(h2, "show", ids.get(0), "--json").ok().json();
        assertTrue(shown.toString().contains("golden"), "host 2 sees the protection: " + shown);
        JsonNode pruned = run(h2, "prune", "--keep-last", "1", "--json").ok().json();
        assertEquals(2, pruned.get("removed").asInt(), "host 2 keeps what host 1 protected: " + pruned);
        assertEquals(sorted(ids.get(0), ids.get(3)), listed(h1), "host 1 sees host 2's prune");

        run(h2, "unprotect", ids.get(0)).ok();
        Cli.Result refused = run(h1, "forget", ids.get(3));
        assertEquals(0, refused.exitCode(), refused.toString());
        assertEquals(List.of(ids.get(0)), listed(h2), "host 2 sees host 1's forget");
        Cli.Result gone = run(h2, "show", ids.get(3));
        assertTrue(gone.exitCode() != 0, "a forgotten backup is not shown: " + gone);

        run(h1, "gc", "--grace", "0s").ok();
        assertEquals(shas.get(0), restoreSha(h2, ids.get(0), "hosts-r0"), "from host 2 after host 1's gc");
        run(h2, "verify").ok();
    }

    /**
     * Host 1 backs up a disk with a bitmap; host 2 forgets that backup: host 1's next incremental is refused (its
     * parent is gone) and auto falls back to a full, which restores bit-exact.
     */
    @Test
    void incrementalWhoseParentAnotherHostForgotIsRefusedAndAutoDoesAFull() {
        List<String> h1 = repoArgs("parent", "parent-cache1");
        List<String> h2 = repoArgs("parent", "parent-cache2");
        init(h1);
        Path img = QemuImages.qcow2(dir.resolve("parent.qcow2"), "4M");
        QemuImages.io(img, "qcow2", "write -P 0x61 0 1M");
        String full = backup(h1, img, "vda");
        QemuImages.addBitmap(img, "b1");
        QemuImages.io(img, "qcow2", "write -P 0x62 2M 64k");
        run(h2, "forget", full).ok();
        try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r", "-A", "-B", "b1")) {
            Cli.Result inc = run(h1, "incremental", "--vm", "web1", "--disk", "vda", "--bitmap", "b1", "--source",
                QemuImages.uriOf(s));
            assertEquals(2, inc.exitCode(), inc.toString());
            assertTrue(inc.stderr().contains("jbackup full"), inc.stderr());
            JsonNode auto = run(h1, "auto", "--vm", "web1", "--disk", "vda", "--bitmap", "b1", "--source",
                QemuImages.uriOf(s), "--json").ok().json().get("disks").get(0);
            assertEquals("full", auto.get("type").asText(), auto.toString());
            assertEquals(Proc.sha256(QemuImages.toRaw(img, dir.resolve("parent.raw"))),
                restoreSha(h2, auto.get("backupId").asText(), "parent-r"));
        }
    }

    /**
     * Pack objects with a damaged footer and a damaged index object: verify names them from any host (a fresh host
     * registers the packs' intact records by scanning them), also from the host that wrote the index and keeps a
     * cached copy of it (verify checks the object in the bucket, not that copy);
     * {@code verify --repair} on that host rewrites the packs' intact records and puts its intact copy of the index
     * back; then another host verifies clean and restores both backups bit-exact.
     */
    @Test
    void verifyChecksTheObjectsInTheBucketAndRepairPutsBackAnIntactIndex() {
        List<String> h1 = repoArgs("repair", "repair-cache1");
        init(h1);
        Path img = QemuImages.qcow2(dir.resolve("repair.qcow2"), "4M");
        QemuImages.io(img, "qcow2", "write -P 0x71 0 1M");
        String first = backup(h1, img, "vda");
        String sha1 = Proc.sha256(QemuImages.toRaw(img, dir.resolve("repair1.raw")));
        QemuImages.io(img, "qcow2", "write -P 0x72 2M 1M");
        String second = backup(h1, img, "vdb");
        String sha2 = Proc.sha256(QemuImages.toRaw(img, dir.resolve("repair2.raw")));
        List<String> packs = objects("repair/packs/");
        assertEquals(2, packs.size(), packs.toString());
        for (String key : packs) {
            byte[] pack = server.client().getObjectAsBytes(b -> b.bucket(BUCKET).key(key)).asByteArray();
            pack[pack.length - 5] ^= (byte) 0xff;
            server.client().putObject(b -> b.bucket(BUCKET).key(key), RequestBody.fromBytes(pack));
        }
        String index = objects("repair/indexes/").stream().filter(k -> k.contains(first)).findFirst().orElseThrow();
        byte[] idx = server.client().getObjectAsBytes(b -> b.bucket(BUCKET).key(index)).asByteArray();
        idx[idx.length / 2] ^= (byte) 0xff;
        server.client().putObject(b -> b.bucket(BUCKET).key(index), RequestBody.fromBytes(idx));

        for (List<String> host : List.of(repoArgs("repair", "repair-cache2"), h1)) {
            Cli.Result v = run(host, "verify", "--json");
            assertEquals(6, v.exitCode(), v.toString());
            assertEquals(2, v.json().get("damagedPacks").size(), "the damaged footers are named: " + v.stdout());
            assertEquals(0, v.json().get("damagedChunks").size(), "the records are intact: " + v.stdout());
            JsonNode damagedIndexes = v.json().get("damagedIndexes");
            assertEquals(1, damagedIndexes.size(), "the damaged index object is named: " + v.stdout());
            assertEquals(first, damagedIndexes.get(0).get("backupId").asText(), v.stdout());
            assertEquals("s3://" + BUCKET + "/" + index, damagedIndexes.get(0).get("file").asText(), v.stdout());
        }
        Cli.Result repair = run(h1, "verify", "--repair", "--json");
        assertEquals(6, repair.exitCode(), repair.toString());
        JsonNode rep = repair.json();
        assertEquals(2, rep.get("packsRewritten").asInt(), rep.toString());
        assertEquals(0, rep.get("backupsMarkedBad").size(), "the index was put back, not marked bad: " + rep);
        assertFalse(objects("repair/").contains("repair/deletion.lease"), "the lease is given back");
        assertTrue(packs.stream().noneMatch(objects("repair/packs/")::contains), "the damaged packs are gone");

        List<String> h3 = repoArgs("repair", "repair-cache3");
        Cli.Result after = run(h3, "verify", "--json");
        assertEquals(0, after.exitCode(), after.toString());
        assertEquals(sha1, restoreSha(h3, first, "repair-r1"));
        Path out = dir.resolve("repair-r2.raw");
        run(h3, "restore", "--vm", "web1", "--disk", "vdb", "--backup", second, "--to", out.toString()).ok();
        assertEquals(sha2, Proc.sha256(out));
    }

    private static List<String> listed(List<String> repoArgs) {
        List<String> ids = new ArrayList<>();
        run(repoArgs, "list", "--json").ok().json().forEach(n -> ids.add(n.get("id").asText()));
        return ids.stream().sorted().toList();
    }

    private static List<String> sorted(String... ids) {
        return java.util.Arrays.stream(ids).sorted().toList();
    }

    @Test
    void datasetChainRestoresEachDayBitExact() throws IOException {
        Path data = DatasetEndToEndTest.dataset();
        List<String> args = repoArgs("dataset", "dataset-cache");
        init(args);
        DatasetEndToEndTest.threeDayChain(Files.createDirectories(dir.resolve("dataset")), data, args);
    }
}
