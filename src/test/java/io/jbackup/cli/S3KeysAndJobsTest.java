package io.jbackup.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.jbackup.objectstore.ObjectStore;
import io.jbackup.objectstore.S3ObjectStore;
import io.jbackup.store.DeletionLease;
import io.jbackup.store.layout.RepositoryLayout;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import io.jbackup.testutil.S3Proxy;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import software.amazon.awssdk.services.s3.model.S3Object;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The commands that work on s3:// repositories since issue #13's last step: {@code jbackup key ...},
 * {@code repair --rebuild-catalog} of this host's cache catalog, and job files whose repository is s3:// run by
 * {@code run-due}; against a real s3proxy, with backups of a qcow2 image served by qemu-nbd compared by SHA-256.
 * Credentials reach the AWS default chain through the {@code aws.accessKeyId} / {@code aws.secretAccessKey} system
 * properties, as they would from the environment of a real host.
 */
class S3KeysAndJobsTest {
    static final String BUCKET = "jbackup-s3-keys";
    static final String PASS1 = "first s3 passphrase 5e1d";
    static final String PASS2 = "second s3 passphrase 0b7c";
    static final String PASS3 = "third s3 passphrase 93aa";

    @TempDir
    static Path serverDir;
    static S3Proxy server;

    @TempDir
    Path tmp;

    @BeforeAll
    static void startServer() {
        server = S3Proxy.start(serverDir).withDefaultCredentials();
        server.createBucket(BUCKET);
    }

    @AfterAll
    static void stopServer() {
        if (server != null) {
            server.close();
        }
    }

    private String url(String prefix) {
        return "s3://" + BUCKET + "/" + prefix;
    }

    /** {@code jbackup ARGS --repo URL} with the endpoint, region and cache directory of this test. */
    private Cli.Result run(String url, String... args) {
        return runOn("cache", url, args);
    }

    /** As {@link #run}, on the host whose cache directory is {@code tmp/CACHE}. */
    private Cli.Result runOn(String cache, String url, String... args) {
        List<String> a = new ArrayList<>(List.of(args));
        a.addAll(List.of("--repo", url, "--s3-endpoint", server.endpoint().toString(), "--s3-region", "us-east-1",
            "--cache-dir", tmp.resolve(cache).toString()));
        return Cli.run(a.toArray(String[]::new));
    }

    private String file(String name, String content) throws IOException {
        return Files.writeString(tmp.resolve(name), content + "\n").toString();
    }

    private List<String> objects(String prefix) {
        return server.client().listObjectsV2(b -> b.bucket(BUCKET).prefix(prefix)).contents().stream()
            .map(S3Object::key).toList();
    }

    private static List<String> ids(JsonNode list) {
        List<String> ids = new ArrayList<>();
        list.get("keys").forEach(k -> ids.add(k.get("id").asText()));
        return ids;
    }

    /** A 4 MiB qcow2 with some data; returns the SHA-256 of its raw content. */
    private String image(Path img) {
        QemuImages.qcow2(img, "4M");
        QemuImages.io(img, "qcow2", "write -P 0x5a 0 192k", "write -P 0x13 1M 64k", "write -P 0xc4 3M 512k");
        return Proc.sha256(QemuImages.toRaw(img, tmp.resolve(img.getFileName() + ".raw")));
    }

    @Test
    void keysAreAddedChangedRemovedAndExportedInTheBucket() throws Exception {
        String url = url("keys");
        String p1 = file("p1", PASS1);
        String p2 = file("p2", PASS2);
        String p3 = file("p3", PASS3);
        run(url, "init", "--chunk-size", "64K", "--encryption", "aes-256-gcm", "--passphrase-file", p1).ok();

        JsonNode added = run(url, "key", "add", "--passphrase-file", p1, "--new-passphrase-file", p2, "--label",
            "ops", "--json").ok().json();
        String id2 = added.get("id").asText();
        assertTrue(objects("keys/keys/").contains("keys/keys/" + id2 + ".key"), objects("keys/").toString());

        JsonNode list = run(url, "key", "list", "--passphrase-file", p2, "--json").ok().json();
        assertEquals(url, list.get("repository").asText());
        assertEquals(id2, list.get("current").asText(), "the second passphrase opens its own key");
        assertEquals(List.of(id2, "repository"), ids(list));

        // passwd of the first key: the new passphrase opens, the old one no longer does
        JsonNode passwd = run(url, "key", "passwd", "--passphrase-file", p1, "--new-passphrase-file", p3, "--json")
            .ok().json();
        assertEquals("repository", passwd.get("removed").asText());
        String id3 = passwd.get("added").get("id").asText();
        Cli.Result old = run(url, "key", "list", "--passphrase-file", p1);
        assertEquals(ExitCodes.REPOSITORY, old.exitCode(), old.toString());
        assertTrue(old.stderr().contains("wrong passphrase for repository " + url), old.stderr());
        assertEquals(id3, run(url, "key", "list", "--passphrase-file", p3, "--json").ok().json().get("current")
            .asText());

        // while another host holds the deletion lease (a gc), a key change waits for it or fails naming it
        try (ObjectStore store = S3ObjectStore.open(server.settings(BUCKET, "keys"));
             DeletionLease gc = DeletionLease.acquire(store, RepositoryLayout.DELETION_LEASE, "gc",
                 DeletionLease.DEFAULT_TTL, Duration.ZERO)) {
            Cli.Result busy = run(url, "key", "remove", id2, "--passphrase-file", p3);
            assertEquals(ExitCodes.USAGE, busy.exitCode(), busy.toString());
            assertTrue(busy.stderr().contains("is locked for deletion"), busy.stderr());
            assertTrue(objects("keys/keys/").contains("keys/keys/" + id2 + ".key"), "nothing was removed");
        }

        // remove the second key with the third passphrase; the last key is refused
        assertEquals(id2, run(url, "key", "remove", id2, "--passphrase-file", p3, "--json").ok().json()
            .get("removed").asText());
        assertEquals(List.of("keys/keys/" + id3 + ".key"), objects("keys/keys/"));
        Cli.Result last = run(url, "key", "remove", id3, "--passphrase-file", p3);
        assertEquals(ExitCodes.USAGE, last.exitCode(), last.toString());
        assertTrue(last.stderr().contains("is the last key"), last.stderr());
        Cli.Result gone = run(url, "key", "list", "--passphrase-file", p2);
        assertEquals(ExitCodes.REPOSITORY, gone.exitCode(), gone.toString());

        // export needs no passphrase and gives the slot as stored in the bucket
        JsonNode export = new ObjectMapper().readTree(run(url, "key", "export").ok().stdout());
        assertEquals(List.of(id3), ids(export));
        assertEquals("keys/" + id3 + ".key", export.get("keys").get(0).get("file").asText());
        String one = run(url, "key", "export", "--id", id3).ok().stdout();
        String stored = server.client().getObjectAsBytes(b -> b.bucket(BUCKET).key("keys/keys/" + id3 + ".key"))
            .asUtf8String();
        assertEquals(stored.strip(), one.strip());

        // key changes held the deletion lease and gave it back
        assertFalse(objects("keys/").contains("keys/deletion.lease"), objects("keys/").toString());
        // and the repository opens with the new passphrase for a command
        run(url, "list", "--passphrase-file", p3).ok();
    }

    @Test
    void rebuildOfTheCacheCatalogFromTheBucketThenListAndRestore() throws Exception {
        String url = url("rebuild");
        String p1 = file("p1", PASS1);
        Path img = tmp.resolve("vda.qcow2");
        String sha = image(img);
        run(url, "init", "--chunk-size", "64K", "--encryption", "aes-256-gcm", "--passphrase-file", p1).ok();
        String backupId;
        try (Proc.Background src = QemuImages.qemuNbd(tmp, img, "qcow2", "-r")) {
            backupId = run(url, "full", "--vm", "web1", "--disk", "vda", "--source", QemuImages.uriOf(src),
                "--passphrase-file", p1, "--json").ok().json().get("disks").get(0).get("backupId").asText();
        }
        int packs = objects("rebuild/packs/").size();
        assertTrue(packs > 0);

        Path cache = tmp.resolve("cache");
        try (Stream<Path> s = Files.walk(cache)) {
            s.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
        assertFalse(Files.exists(cache));
        Cli.Result r = run(url, "repair", "--rebuild-catalog", "--passphrase-file", p1).ok();
        assertTrue(r.stdout().contains("Rebuilt the catalog of " + url + ": " + packs + " packs, "), r.stdout());
        assertTrue(r.stdout().contains(", 1 backups (0 marked bad)."), r.stdout());
        assertFalse(r.stdout().contains("PROBLEM"), r.stdout());

        // a second rebuild keeps the first catalog aside, in the cache directory
        Cli.Result again = run(url, "repair", "--rebuild-catalog", "--passphrase-file", p1, "--json").ok();
        JsonNode rep = again.json();
        assertEquals(1, rep.get("backups").asInt(), rep.toString());
        Path aside = Path.of(rep.get("oldCatalog").asText());
        assertTrue(aside.startsWith(cache) && Files.isRegularFile(aside), aside.toString());

        JsonNode list = run(url, "list", "--passphrase-file", p1, "--json").ok().json();
        assertTrue(list.toString().contains(backupId), list.toString());
        Path out = tmp.resolve("restored.raw");
        run(url, "restore", "--vm", "web1", "--disk", "vda", "--backup", backupId, "--to", out.toString(),
            "--passphrase-file", p1).ok();
        assertEquals(sha, Proc.sha256(out), "restored image");
    }

    /**
     * {@code list} without the passphrase cannot refresh a host's cache (manifests are authenticated with the key):
     * it said nothing, so a monitoring host missed the backups other hosts made and listed those they deleted.
     */
    @Test
    void listWithoutThePassphraseWarnsThatTheCacheMissesOtherHostsChanges() throws Exception {
        String url = url("stale");
        String p1 = file("p1", PASS1);
        Path img = tmp.resolve("vda.qcow2");
        image(img);
        run(url, "init", "--chunk-size", "64K", "--encryption", "aes-256-gcm", "--passphrase-file", p1).ok();
        String first;
        String second;
        try (Proc.Background src = QemuImages.qemuNbd(tmp, img, "qcow2", "-r")) {
            String uri = QemuImages.uriOf(src);
            first = run(url, "full", "--vm", "web1", "--disk", "vda", "--source", uri, "--passphrase-file", p1,
                "--json").ok().json().get("disks").get(0).get("backupId").asText();
            runOn("cacheB", url, "list", "--passphrase-file", p1).ok(); // host B's cache knows the first
            Cli.Result fresh = runOn("cacheB", url, "list", "--json").ok();
            assertFalse(fresh.stderr().contains("out of date"), fresh.stderr());
            second = run(url, "full", "--vm", "web1", "--disk", "vda", "--source", uri, "--passphrase-file", p1,
                "--json").ok().json().get("disks").get(0).get("backupId").asText();
        }
        run(url, "forget", first, "--passphrase-file", p1).ok();

        Cli.Result stale = runOn("cacheB", url, "list", "--json").ok();
        JsonNode rows = stale.json();
        assertEquals(1, rows.size(), rows.toString());
        assertEquals(first, rows.get(0).get("id").asText(), "the cache, as it was");
        assertTrue(stale.stderr().contains("this host's cache of " + url + " is out of date"), stale.stderr());
        assertTrue(stale.stderr().contains("1 backup committed by other hosts is not shown, and 1 backup shown was "
            + "deleted by other hosts"), stale.stderr());
        assertTrue(stale.stderr().contains("JBACKUP_PASSPHRASE or --passphrase-file"), stale.stderr());

        Cli.Result keyed = runOn("cacheB", url, "list", "--passphrase-file", p1, "--json").ok();
        assertEquals(second, keyed.json().get(0).get("id").asText(), keyed.stdout());
        assertEquals(1, keyed.json().size(), keyed.stdout());
        Cli.Result refreshed = runOn("cacheB", url, "list").ok();
        assertFalse(refreshed.stderr().contains("out of date"), refreshed.stderr());
    }

    @Test
    void jobFileWithAnS3RepositoryRunsDueAndRestoresBitExact() throws Exception {
        String url = url("jobs");
        String p1 = file("p1", PASS1);
        Path img = tmp.resolve("web.qcow2");
        String sha = image(img);
        run(url, "init", "--chunk-size", "64K", "--encryption", "aes-256-gcm", "--passphrase-file", p1).ok();
        Path cache = tmp.resolve("cache");
        try (Proc.Background src = QemuImages.qemuNbd(tmp, img, "qcow2", "-r")) {
            Path jobs = tmp.resolve("nightly.yaml");
            Files.writeString(jobs, String.join("\n",
                "repository: " + url,
                "s3Endpoint: " + server.endpoint(),
                "s3Region: us-east-1",
                "s3PathStyle: true",
                "cacheDir: cache",
                "passphraseFile: p1",
                "timezone: UTC",
                "jobs:",
                "  - name: web1",
                "    vm: web1",
                "    schedule: \"0 2 * * *\"",
                "    mode: full",
                "    disks:",
                "      - {name: vda, source: \"" + QemuImages.uriOf(src) + "\"}",
                ""));
            JsonNode sched = Cli.run("schedule", "--config", jobs.toString(), "--json", "--now",
                "2026-11-24T02:30:00Z").ok().json();
            assertEquals(url, sched.get("repository").asText());
            Path state = cache.resolve("schedule/s3/" + BUCKET + "/jobs/nightly.json");
            assertEquals(state.toString(), sched.get("state").asText());

            Cli.Result due = Cli.run("run-due", "--config", jobs.toString(), "--now", "2026-11-24T02:30:00Z",
                "--json");
            assertEquals(0, due.exitCode(), due.toString());
            JsonNode st = new ObjectMapper().readTree(state.toFile()).get("tasks");
            assertEquals("ok", st.get("job:web1").get("status").asText(), st.toString());
            assertEquals(1, Cli.run("log", "--config", jobs.toString(), "--json").ok().json().size());
        }
        assertFalse(objects("jobs/manifests/").isEmpty(), "the backup is committed in the bucket");
        JsonNode list = run(url, "list", "--passphrase-file", p1, "--json").ok().json();
        String id = list.findValuesAsText("id").get(0);
        Path out = tmp.resolve("job.raw");
        run(url, "restore", "--vm", "web1", "--disk", "vda", "--backup", id, "--to", out.toString(),
            "--passphrase-file", p1).ok();
        assertEquals(sha, Proc.sha256(out), "restored image");
    }
}
