package io.jbackup.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Repository;
import io.jbackup.store.WrongPassphraseException;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Key management of an encrypted repository ({@code jbackup key passwd|add|list|remove|export}) and reading its
 * listing without the passphrase ({@code list}, {@code show}), against a real backup of a qcow2 image served by
 * qemu-nbd; restores are compared by SHA-256 with {@code qemu-img convert} of the image.
 */
class KeyCommandTest {
    static final String PASS1 = "first passphrase 1c9e";
    static final String PASS2 = "second passphrase 77a0";

    @TempDir
    Path tmp;

    String repo;
    String backupId;
    String sha;

    @AfterEach
    void restoreEnv() {
        RepoOptions.env = System.getenv();
    }

    private String file(String name, String content) throws IOException {
        return Files.writeString(tmp.resolve(name), content + "\n").toString();
    }

    /** An encrypted repository (passphrase PASS1) holding one full backup of a 4 MiB qcow2 with some data. */
    private void encryptedRepoWithBackup() throws IOException {
        repo = tmp.resolve("repo").toString();
        Path img = QemuImages.qcow2(tmp.resolve("vda.qcow2"), "4M");
        QemuImages.io(img, "qcow2", "write -P 0x5a 0 192k", "write -P 0x13 1M 64k", "write -P 0xc4 3M 512k");
        sha = Proc.sha256(QemuImages.toRaw(img, tmp.resolve("vda.raw")));
        String p1 = file("p1", PASS1);
        Cli.run("init", "--repo", repo, "--chunk-size", "64K", "--encryption", "aes-256-gcm",
            "--passphrase-file", p1).ok();
        try (Proc.Background src = QemuImages.qemuNbd(tmp, img, "qcow2", "-r")) {
            backupId = Cli.run("full", "--repo", repo, "--vm", "web1", "--disk", "vda", "--source",
                QemuImages.uriOf(src), "--label", "tier=gold", "--passphrase-file", p1, "--json").ok()
                .json().get("disks").get(0).get("backupId").asText();
        }
    }

    private void assertRestores(String passFile, String name) {
        Path out = tmp.resolve(name);
        Cli.run("restore", "--repo", repo, "--vm", "web1", "--disk", "vda", "--backup", backupId, "--to",
            out.toString(), "--passphrase-file", passFile).ok();
        assertEquals(sha, Proc.sha256(out), "restored image");
    }

    /** SHA-256 and mtime of every file under packs/ and indexes/. */
    private Map<String, String> dataFiles() throws IOException {
        Map<String, String> m = new TreeMap<>();
        for (String d : List.of("packs", "indexes")) {
            try (Stream<Path> s = Files.walk(Path.of(repo, d))) {
                for (Path p : s.filter(Files::isRegularFile).toList()) {
                    m.put(p.toString(), Proc.sha256(p) + " " + Files.getLastModifiedTime(p).toMillis());
                }
            }
        }
        return m;
    }

    private static List<String> ids(JsonNode list) {
        List<String> ids = new ArrayList<>();
        list.get("keys").forEach(k -> ids.add(k.get("id").asText()));
        return ids;
    }

    @Test
    void passwdReplacesThePassphraseWithoutRewritingData() throws Exception {
        encryptedRepoWithBackup();
        Map<String, String> before = dataFiles();
        assertFalse(before.isEmpty());
        String p1 = file("p1", PASS1);
        String p2 = file("p2", PASS2);

        Cli.Result passwd = Cli.run("key", "passwd", "--repo", repo, "--passphrase-file", p1,
            "--new-passphrase-file", p2);
        assertEquals(0, passwd.exitCode(), passwd.toString());
        assertFalse(passwd.stdout().contains(PASS1) || passwd.stdout().contains(PASS2), passwd.stdout());

        // the old passphrase no longer opens, the new one does, and the data is untouched
        Cli.Result old = Cli.run("restore", "--repo", repo, "--vm", "web1", "--disk", "vda", "--backup", backupId,
            "--to", tmp.resolve("old.raw").toString(), "--passphrase-file", p1);
        assertEquals(ExitCodes.REPOSITORY, old.exitCode(), old.toString());
        assertTrue(old.stderr().contains("wrong passphrase for repository"), old.stderr());
        assertThrows(WrongPassphraseException.class,
            () -> Repository.open(Path.of(repo), OpenOptions.defaults().withPassphrase(PASS1)).close());
        assertRestores(p2, "new.raw");
        assertEquals(before, dataFiles(), "packs and indexes are neither rewritten nor touched");
        Cli.Result verify = Cli.run("verify", "--repo", repo, "--passphrase-file", p2);
        assertEquals(0, verify.exitCode(), verify.toString());

        // one key slot remains, private like the first
        JsonNode list = Cli.run("key", "list", "--repo", repo, "--passphrase-file", p2, "--json").ok().json();
        assertEquals(1, list.get("keys").size(), list.toString());
        String id = ids(list).get(0);
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(
            Path.of(repo, "keys", id + ".key"))));

        // the same passphrase again is refused: a passwd that changes nothing is a mistake
        Cli.Result same = Cli.run("key", "passwd", "--repo", repo, "--passphrase-file", p2,
            "--new-passphrase-file", p2);
        assertEquals(ExitCodes.USAGE, same.exitCode(), same.toString());
        assertTrue(same.stderr().contains("same"), same.stderr());
    }

    @Test
    void severalKeysOpenTheRepositoryAndTheLastIsNeverRemoved() throws Exception {
        encryptedRepoWithBackup();
        String p1 = file("p1", PASS1);
        String p2 = file("p2", PASS2);
        Map<String, String> before = dataFiles();

        Cli.Result add = Cli.run("key", "add", "--repo", repo, "--passphrase-file", p1, "--new-passphrase-file", p2,
            "--label", "offsite admin", "--json");
        assertEquals(0, add.exitCode(), add.toString());
        String added = add.json().get("id").asText();

        // both passphrases open and restore
        assertRestores(p1, "a.raw");
        assertRestores(p2, "b.raw");
        assertEquals(before, dataFiles());

        // key list: both, with label and host, the one that opened marked
        JsonNode list = Cli.run("key", "list", "--repo", repo, "--passphrase-file", p2, "--json").ok().json();
        assertEquals(2, list.get("keys").size(), list.toString());
        assertEquals(added, list.get("current").asText(), list.toString());
        String first = null;
        for (JsonNode k : list.get("keys")) {
            boolean cur = k.get("current").asBoolean();
            assertEquals(k.get("id").asText().equals(added), cur, list.toString());
            assertTrue(k.hasNonNull("created") && k.hasNonNull("host"), list.toString());
            if (cur) {
                assertEquals("offsite admin", k.get("label").asText(), list.toString());
            } else {
                first = k.get("id").asText();
            }
        }
        Cli.Result text = Cli.run("key", "list", "--repo", repo, "--passphrase-file", p1).ok();
        assertTrue(text.stdout().contains(added) && text.stdout().contains("offsite admin")
            && text.stdout().contains("* " + first), text.stdout());

        // key export: every slot, or the chosen one verbatim
        JsonNode all = Cli.run("key", "export", "--repo", repo).ok().json();
        assertEquals(2, all.get("keys").size(), all.toString());
        String one = Cli.run("key", "export", "--repo", repo, "--id", added).ok().stdout();
        assertEquals(Files.readString(Path.of(repo, "keys", added + ".key")).strip(), one.strip());

        // the slot that opened the repository is not removed; another one is
        Cli.Result self = Cli.run("key", "remove", "--repo", repo, "--passphrase-file", p1, first);
        assertEquals(ExitCodes.USAGE, self.exitCode(), self.toString());
        assertTrue(self.stderr().contains("opened") && self.stderr().contains("passphrase"), self.stderr());
        Cli.Result rm = Cli.run("key", "remove", "--repo", repo, "--passphrase-file", p2, first);
        assertEquals(0, rm.exitCode(), rm.toString());
        Cli.Result gone = Cli.run("list", "--repo", repo, "--passphrase-file", p1);
        assertEquals(ExitCodes.REPOSITORY, gone.exitCode(), gone.toString());
        assertTrue(gone.stderr().contains("wrong passphrase"), gone.stderr());
        assertRestores(p2, "c.raw");

        // the last key is never removed, whatever passphrase opened it
        Cli.Result last = Cli.run("key", "remove", "--repo", repo, "--passphrase-file", p2, added);
        assertEquals(ExitCodes.USAGE, last.exitCode(), last.toString());
        assertTrue(last.stderr().contains("last key"), last.stderr());
        assertTrue(Files.exists(Path.of(repo, "keys", added + ".key")));
        Cli.Result none = Cli.run("key", "remove", "--repo", repo, "--passphrase-file", p2, "0000dead");
        assertEquals(ExitCodes.USAGE, none.exitCode(), none.toString());
        assertTrue(none.stderr().contains("jbackup key list"), none.stderr());
        assertEquals(before, dataFiles());
    }

    @Test
    void aDamagedKeySlotDoesNotStopTheOthers() throws Exception {
        encryptedRepoWithBackup();
        String p1 = file("p1", PASS1);
        String p2 = file("p2", PASS2);
        Cli.run("key", "add", "--repo", repo, "--passphrase-file", p1, "--new-passphrase-file", p2).ok();
        Files.writeString(Path.of(repo, "keys", "repository.key"), "{ not json");
        assertRestores(p2, "ok.raw");
        Cli.Result wrong = Cli.run("list", "--repo", repo, "--passphrase-file", p1, "--json");
        assertEquals(ExitCodes.REPOSITORY, wrong.exitCode(), wrong.toString());
        assertTrue(wrong.stderr().contains("repository.key") && wrong.stderr().contains("key export"),
            wrong.stderr());
        // a rebuilt catalog needs a key, any key
        Files.delete(Path.of(repo, "catalog.db"));
        Cli.run("repair", "--repo", repo, "--rebuild-catalog", "--passphrase-file", p2).ok();
        assertRestores(p2, "rebuilt.raw");
    }

    @Test
    void listAndShowNeedNoPassphraseButRestoreDoes() throws Exception {
        encryptedRepoWithBackup();
        Map<String, String> env = new HashMap<>(System.getenv());
        env.remove("JBACKUP_PASSPHRASE");
        RepoOptions.env = env;

        JsonNode list = Cli.run("list", "--repo", repo, "--json").ok().json();
        assertEquals(1, list.size(), list.toString());
        assertEquals(backupId, list.get(0).get("id").asText());
        assertEquals("web1", list.get(0).get("vm").asText());
        assertEquals("gold", list.get(0).get("labels").get("tier").asText());
        Cli.Result text = Cli.run("list", "--repo", repo).ok();
        assertTrue(text.stdout().contains("web1/vda") && text.stdout().contains(backupId), text.stdout());
        Cli.Result show = Cli.run("show", "--repo", repo, backupId.substring(0, 17)).ok();
        assertTrue(show.stdout().contains(backupId) && show.stdout().contains("4194304 bytes"), show.stdout());
        Cli.Result latest = Cli.run("show", "--repo", repo, "--vm", "web1", "--disk", "vda", "latest", "--json").ok();
        assertEquals(backupId, latest.json().get("id").asText());

        // restore, verify and the key commands still need it, and say how to give it
        for (List<String> cmd : List.of(
            List.of("restore", "--repo", repo, "--vm", "web1", "--disk", "vda", "--backup", backupId, "--to",
                tmp.resolve("x.raw").toString()),
            List.of("verify", "--repo", repo),
            List.of("key", "list", "--repo", repo))) {
            Cli.Result r = Cli.run(cmd.toArray(String[]::new));
            assertEquals(ExitCodes.REPOSITORY, r.exitCode(), cmd + ": " + r);
            assertTrue(r.stderr().contains("JBACKUP_PASSPHRASE") && r.stderr().contains("--passphrase-file"),
                cmd + ": " + r.stderr());
        }
        assertFalse(Files.exists(tmp.resolve("x.raw")));

        // a wrong passphrase, when given, is still an error
        Cli.Result wrong = Cli.run("list", "--repo", repo, "--passphrase-file", file("bad", "not it"));
        assertEquals(ExitCodes.REPOSITORY, wrong.exitCode(), wrong.toString());

        // without the catalog there is nothing to list without the key: rebuilding it needs the passphrase
        Files.delete(Path.of(repo, "catalog.db"));
        Cli.Result lost = Cli.run("list", "--repo", repo);
        assertEquals(ExitCodes.REPOSITORY, lost.exitCode(), lost.toString());
        assertTrue(lost.stderr().contains("--rebuild-catalog") && lost.stderr().contains("passphrase"),
            lost.stderr());
    }
}
