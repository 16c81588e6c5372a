package io.jbackup.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jbackup.model.RepositoryException;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Repository;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import io.jbackup.testutil.TestJvm;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Security of encrypted repositories: a tampered or downgraded config.json is refused (its MAC under the metadata
 * subkey; a plain config next to a key file or keyed indexes), the key file, the catalog and the repository
 * directory are private (0600 / 0700), and passphrases reach no output, log or exception message, even at debug
 * level in a separate JVM, and cannot be given as an argument.
 */
@Tag("reliability")
class RepositorySecurityTest {
    static final String PASS = "s3cret-Passphrase-7f1d";
    static final com.fasterxml.jackson.databind.ObjectMapper JSON = new com.fasterxml.jackson.databind.ObjectMapper();

    @TempDir
    Path tmp;

    private Path encryptedRepoWithBackup() throws IOException {
        Path repo = tmp.resolve("repo");
        try (Repository r = Repository.init(repo, new io.jbackup.store.RepositoryOptions(64 * 1024,
            io.jbackup.store.Encryption.AES_256_GCM, 1), PASS.toCharArray())) {
            try (var w = r.beginBackup(io.jbackup.store.BackupSpec.full("vm", "vda", 64 * 1024))) {
                byte[] b = new byte[64 * 1024];
                new Random(1).nextBytes(b);
                w.putChunk(0, b, b.length);
                w.commit();
            }
        }
        return repo;
    }

    private static void editConfig(Path repo, Consumer<ObjectNode> edit) throws IOException {
        Path f = repo.resolve("config.json");
        ObjectNode n = (ObjectNode) JSON.readTree(f.toFile());
        edit.accept(n);
        Files.write(f, JSON.writeValueAsBytes(n));
    }

    private static RepositoryException refused(Path repo) {
        return assertThrows(RepositoryException.class,
            () -> Repository.open(repo, OpenOptions.defaults().withPassphrase(PASS)).close());
    }

    @Test
    void tamperedOrDowngradedConfigIsRefused() throws IOException {
        Path repo = encryptedRepoWithBackup();
        byte[] original = Files.readAllBytes(repo.resolve("config.json"));
        assertTrue(new String(original, StandardCharsets.UTF_8).matches("(?s).*\"mac\" *: *\"[0-9a-f]{64}\".*"));
        Repository.open(repo, OpenOptions.defaults().withPassphrase(PASS)).close();

        // each field the MAC covers, changed
        Map<String, Consumer<ObjectNode>> edits = new HashMap<>();
        edits.put("chunkSize", n -> n.put("chunkSize", 128 * 1024));
        edits.put("compressionLevel", n -> n.put("compressionLevel", 0));
        edits.put("packSize", n -> n.put("packSize", 1 << 20));
        edits.put("created", n -> n.put("created", "2020-01-01T00:00:00Z"));
        edits.put("mac", n -> n.put("mac", "00".repeat(32)));
        for (Map.Entry<String, Consumer<ObjectNode>> e : edits.entrySet()) {
            Files.write(repo.resolve("config.json"), original);
            editConfig(repo, e.getValue());
            RepositoryException x = refused(repo);
            assertTrue(x.getMessage().contains("config.json fails its MAC"), e.getKey() + ": " + x.getMessage());
        }
        Files.write(repo.resolve("config.json"), original);
        editConfig(repo, n -> n.remove("mac"));
        assertTrue(refused(repo).getMessage().contains("no \"mac\" field"));

        // downgrade: encryption off, with the key file there, and with it deleted (the indexes are keyed)
        Files.write(repo.resolve("config.json"), original);
        editConfig(repo, n -> {
            n.put("encryption", "none");
            n.remove("mac");
        });
        RepositoryException down = refused(repo);
        assertTrue(down.getMessage().contains("\"encryption\": \"none\"") && down.getMessage().contains("repository.key")
            && down.getMessage().contains("plaintext"), down.getMessage());
        Path key = repo.resolve("keys/repository.key");
        byte[] keyBytes = Files.readAllBytes(key);
        Files.delete(key);
        down = refused(repo);
        assertTrue(down.getMessage().contains("authenticated with a repository key"), down.getMessage());
        Cli.Result cli = Cli.run("list", "--repo", repo.toString());
        assertEquals(5, cli.exitCode(), cli.toString());
        assertTrue(cli.stderr().contains("plaintext"), cli.stderr());

        // put back: opens again, and nothing was written meanwhile
        Files.write(key, keyBytes);
        Files.write(repo.resolve("config.json"), original);
        try (Repository r = Repository.open(repo, OpenOptions.defaults().withPassphrase(PASS))) {
            assertEquals(1, r.listBackups().size());
            assertTrue(r.verify(io.jbackup.store.VerifyOptions.all()).ok());
        }
    }

    @Test
    void keyFileCatalogAndDirectoryArePrivate() throws Exception {
        Path repo = encryptedRepoWithBackup();
        assertEquals("rwx------", perms(repo));
        assertEquals("rwx------", perms(repo.resolve("keys")));
        assertEquals("rw-------", perms(repo.resolve("keys/repository.key")));
        assertEquals("rw-------", perms(repo.resolve("catalog.db")));
        try (Repository r = Repository.open(repo, OpenOptions.defaults().withPassphrase(PASS))) {
            r.listBackups();
            assertTrue(Files.exists(repo.resolve("catalog.db-wal")) && Files.exists(repo.resolve("catalog.db-shm")));
            assertEquals("rw-------", perms(repo.resolve("catalog.db-wal")));
            assertEquals("rw-------", perms(repo.resolve("catalog.db-shm")));
        }
        // a rebuilt catalog too
        Cli.Result r = Cli.run("repair", "--repo", repo.toString(), "--rebuild-catalog", "--passphrase-file",
            Files.writeString(tmp.resolve("pass"), PASS).toString());
        assertEquals(0, r.exitCode(), r.toString());
        assertEquals("rw-------", perms(repo.resolve("catalog.db")));
        // init through the CLI into an existing, open directory
        Path open = Files.createDirectories(tmp.resolve("open"),
            PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwxr-xr-x")));
        Cli.run("init", "--repo", open.toString()).ok();
        assertEquals("rwx------", perms(open));
        assertEquals("rw-------", perms(open.resolve("catalog.db")));
    }

    private static String perms(Path p) throws IOException {
        return PosixFilePermissions.toString(Files.getPosixFilePermissions(p));
    }

    @Test
    void passphrasesReachNoOutputLogOrArgument() throws Exception {
        // there is no option that takes the passphrase itself
        for (String opt : List.of("--passphrase", "--password", "-p")) {
            Cli.Result r = Cli.run("list", "--repo", tmp.toString(), opt, PASS);
            assertEquals(2, r.exitCode(), opt + ": " + r);
            assertFalse(JBackup.commandLine().getSubcommands().values().stream().anyMatch(c -> c.getCommandSpec()
                .options().stream().anyMatch(o -> List.of(o.names()).contains(opt))), opt + " exists");
        }
        Path repo = tmp.resolve("repo");
        Path passFile = Files.writeString(tmp.resolve("pass.txt"), PASS + "\n");
        Path wrongFile = Files.writeString(tmp.resolve("wrong.txt"), "Wrong-" + PASS + "\n");
        byte[] data = new byte[256 * 1024];
        new Random(7).nextBytes(data);
        Path img = tmp.resolve("disk.qcow2");
        Proc.run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", Files.write(tmp.resolve("d.raw"), data).toString(),
            img.toString());
        List<String> outputs = new ArrayList<>();
        Map<String, String> env = Map.of("JBACKUP_PASSPHRASE", PASS);
        outputs.add(jbackup(env, 0, "init", "--repo", repo.toString(), "--encryption", "aes-256-gcm",
            "--chunk-size", "64K", "-vv"));
        try (Proc.Background s = QemuImages.qemuNbd(tmp, img, "qcow2", "-r")) {
            outputs.add(jbackup(Map.of(), 0, "full", "--repo", repo.toString(), "--disk", "d", "--source",
                QemuImages.uriOf(s), "--passphrase-file", passFile.toString(), "-vv"));
        }
        Path out = tmp.resolve("out.raw");
        outputs.add(jbackup(env, 0, "restore", "--repo", repo.toString(), "--disk", "d", "--to", out.toString(),
            "-vv"));
        assertEquals(Proc.sha256(tmp.resolve("d.raw")), Proc.sha256(out));
        outputs.add(jbackup(Map.of("JBACKUP_PASSPHRASE", "Wrong-" + PASS), 5, "list", "--repo", repo.toString(),
            "-vvv"));
        // key management: the current passphrase, and new ones, reach no output either
        Path newFile = Files.writeString(tmp.resolve("new.txt"), "New-" + PASS + "\n");
        outputs.add(jbackup(env, 0, "key", "add", "--repo", repo.toString(), "--new-passphrase-file",
            newFile.toString(), "-vvv"));
        outputs.add(jbackup(Map.of(), 0, "key", "passwd", "--repo", repo.toString(), "--passphrase-file",
            newFile.toString(), "--new-passphrase-file", Files.writeString(tmp.resolve("newer.txt"), "Newer-" + PASS)
                .toString(), "-vvv"));
        outputs.add(jbackup(Map.of(), 5, "verify", "--repo", repo.toString(), "--passphrase-file",
            wrongFile.toString(), "-vvv"));
        String all = String.join("\n", outputs);
        assertTrue(all.contains("wrong passphrase"), all);
        assertTrue(all.contains("DEBUG"), "debug logging was on: " + all);
        assertFalse(all.contains(PASS), "a passphrase appears in the output:\n" + all);
        // nor in any file of the repository (catalog run log, scheduled-run logs, lock records, ...)
        try (Stream<Path> s = Files.walk(repo)) {
            for (Path f : s.filter(Files::isRegularFile).toList()) {
                String content = new String(Files.readAllBytes(f), StandardCharsets.ISO_8859_1);
                assertFalse(content.contains(PASS), "passphrase in " + f);
            }
        }
    }

    /** Runs jbackup in its own JVM (so -vv really configures logging); returns stdout and stderr. */
    private String jbackup(Map<String, String> env, int expectedExit, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(TestJvm.java(
            "-cp", System.getProperty("java.class.path"), Main.class.getName()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectInput(ProcessBuilder.Redirect.from(new java.io.File(
            "/dev/null")));
        pb.environment().remove("JBACKUP_PASSPHRASE");
        pb.environment().putAll(env);
        Path o = Files.createTempFile(tmp, "out", ".txt");
        Path e = Files.createTempFile(tmp, "err", ".txt");
        Process p = pb.redirectOutput(o.toFile()).redirectError(e.toFile()).start();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "jbackup " + String.join(" ", args) + " did not finish");
        String text = Files.readString(o) + "\n" + Files.readString(e);
        assertEquals(expectedExit, p.exitValue(), String.join(" ", args) + ":\n" + text);
        Files.delete(o);
        Files.delete(e);
        return text;
    }
}
