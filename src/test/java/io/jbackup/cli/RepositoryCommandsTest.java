package io.jbackup.cli;

import io.jbackup.catalog.ChunkLocation;
import io.jbackup.store.BackupReader;
import io.jbackup.store.BackupSpec;
import io.jbackup.store.BackupWriter;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Repository;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class RepositoryCommandsTest {
    static final int CS = 64 * 1024;

    @TempDir
    Path tmp;

    record Run(int code, String out, String err) {
    }

    @AfterEach
    void restoreEnv() {
        RepoOptions.env = System.getenv();
    }

    static Run run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cl = JBackup.commandLine();
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        int code = cl.execute(args);
        return new Run(code, out.toString(), err.toString());
    }

    static byte[] data(int seed) {
        byte[] b = new byte[CS];
        new Random(seed).nextBytes(b);
        Arrays.fill(b, CS / 2, CS, (byte) seed);
        return b;
    }

    @Test
    void initKeyExportVerifyAndRebuildFromTheCommandLine() throws Exception {
        Path repo = tmp.resolve("repo");
        Path pw = tmp.resolve("pw.txt");
        Files.writeString(pw, "s3cret passphrase\n");
        Run init = run("init", "--repo", repo.toString(), "--chunk-size", "64K", "--encryption", "aes-256-gcm",
            "--passphrase-file", pw.toString());
        assertEquals(0, init.code, init.toString());
        assertTrue(init.out.contains("Created repository " + repo) && init.out.contains("encryption aes-256-gcm")
            && init.out.contains("jbackup key export"), init.out);

        String id;
        OpenOptions o = OpenOptions.defaults().withPassphrase("s3cret passphrase");
        try (Repository r = Repository.open(repo, o); BackupWriter w = r.beginBackup(BackupSpec.full("vm", "vda",
            3L * CS))) {
            for (int i = 0; i < 3; i++) {
                w.putChunk(i, data(i), CS);
            }
            id = w.commit().id();
        }

        Run key = run("key", "export", "--repo", repo.toString());
        assertEquals(0, key.code, key.toString());
        assertTrue(key.out.contains("\"sealedKey\""), key.out);

        Run ok = run("verify", "--repo", repo.toString(), "--passphrase-file", pw.toString());
        assertEquals(0, ok.code, ok.toString());
        assertTrue(ok.out.contains("Checked 3 chunks") && ok.out.contains("No damage found"), ok.out);

        // flip one byte of the second chunk's record
        ChunkLocation loc;
        byte[] digest;
        try (Repository r = Repository.open(repo, o); BackupReader br = r.openBackup(id)) {
            digest = br.digest(1);
        }
        loc = findChunk(repo, o, digest);
        Path pack;
        try (var s = Files.walk(repo.resolve("packs"))) {
            pack = s.filter(p -> p.getFileName().toString().equals(loc.pack() + ".pack")).findFirst().orElseThrow();
        }
        byte[] b = Files.readAllBytes(pack);
        b[(int) loc.offset() + 200] ^= 0x10;
        Files.write(pack, b);

        Run bad = run("verify", "--repo", repo.toString(), "--passphrase-file", pw.toString(), "--backup",
            id.substring(0, 18));
        assertEquals(ExitCodes.DAMAGE, bad.code, bad.toString());
        assertTrue(bad.out.contains("DAMAGED chunk " + java.util.HexFormat.of().formatHex(digest))
            && bad.out.contains(pack.toString()) && bad.out.contains("used by backup " + id + " (vm/vda) at disk offset "
            + CS), bad.out);

        Run wrong = run("verify", "--repo", repo.toString());
        assertEquals(ExitCodes.REPOSITORY, wrong.code, wrong.toString());
        assertTrue(wrong.err.contains("JBACKUP_PASSPHRASE"), wrong.err);
        Files.writeString(tmp.resolve("wrong.txt"), "nope");
        wrong = run("verify", "--repo", repo.toString(), "--passphrase-file", tmp.resolve("wrong.txt").toString());
        assertEquals(ExitCodes.REPOSITORY, wrong.code, wrong.toString());
        assertTrue(wrong.err.contains("wrong passphrase for repository"), wrong.err);

        // repair the pack byte, lose the catalog, rebuild it; environment variables instead of options
        b[(int) loc.offset() + 200] ^= 0x10;
        Files.write(pack, b);
        Files.delete(repo.resolve("catalog.db"));
        Map<String, String> env = new HashMap<>(System.getenv());
        env.put("JBACKUP_REPO", repo.toString());
        env.put("JBACKUP_PASSPHRASE", "s3cret passphrase");
        RepoOptions.env = env;
        Run rebuild = run("repair", "--rebuild-catalog");
        assertEquals(0, rebuild.code, rebuild.toString());
        assertTrue(rebuild.out.contains("1 backups"), rebuild.out);
        try (Repository r = Repository.open(repo, o); BackupReader br = r.openBackup(id)) {
            for (int i = 0; i < 3; i++) {
                assertArrayEquals(data(i), br.readChunk(i));
            }
        }
        Run after = run("verify", "--json");
        assertEquals(0, after.code, after.toString());
    }

    private static ChunkLocation findChunk(Path repo, OpenOptions o, byte[] digest) throws Exception {
        try (Repository r = Repository.open(repo, o)) {
            return r.chunkLocation(digest);
        }
    }

    @Test
    void usageErrorsExitTwo() {
        Run noRepo = run("verify");
        assertEquals(ExitCodes.USAGE, noRepo.code, noRepo.toString());
        assertTrue(noRepo.err.contains("--repo DIR") && noRepo.err.contains("JBACKUP_REPO"), noRepo.err);
        Run badSize = run("init", "--repo", tmp.resolve("r").toString(), "--chunk-size", "3M");
        assertEquals(ExitCodes.USAGE, badSize.code, badSize.toString());
        assertTrue(badSize.err.contains("power of two"), badSize.err);
        Run noPass = run("init", "--repo", tmp.resolve("r").toString(), "--encryption", "aes-256-gcm");
        assertEquals(ExitCodes.USAGE, noPass.code, noPass.toString());
        assertTrue(noPass.err.contains("needs a passphrase"), noPass.err);
        Run nothing = run("repair", "--repo", tmp.toString());
        assertEquals(ExitCodes.USAGE, nothing.code, nothing.toString());
        Run notEncrypted = run("init", "--repo", tmp.resolve("plain").toString());
        assertEquals(0, notEncrypted.code, notEncrypted.toString());
        Run noKey = run("key", "export", "--repo", tmp.resolve("plain").toString());
        assertEquals(ExitCodes.REPOSITORY, noKey.code, noKey.toString());
        assertTrue(noKey.err.contains("not encrypted"), noKey.err);
    }
}
