package io.jbackup.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.store.BackupSpec;
import io.jbackup.store.BackupWriter;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Repository;
import io.jbackup.testutil.Cli;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code jbackup show} lists a backup's attachments (text and JSON) and writes one raw with {@code --attachment}. */
class ShowAttachmentsTest {
    static final int CS = 64 * 1024;
    static final String PASS = "show attachments passphrase";

    @TempDir
    Path tmp;

    /** Runs jbackup capturing standard output as bytes (an attachment is binary). */
    static synchronized Object[] runRaw(String... args) {
        PrintStream old = System.out;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        StringWriter err = new StringWriter();
        try (PrintStream o = new PrintStream(out, true)) {
            System.setOut(o);
            CommandLine cl = JBackup.commandLine();
            cl.setOut(new PrintWriter(o, true));
            cl.setErr(new PrintWriter(err, true));
            int code = cl.execute(args);
            return new Object[] {code, out.toByteArray(), err.toString()};
        } finally {
            System.setOut(old);
        }
    }

    @Test
    void showListsAttachmentsAndWritesOneRaw() throws Exception {
        Path repo = tmp.resolve("repo");
        Path pw = Files.writeString(tmp.resolve("pw"), PASS + "\n");
        Cli.run("init", "--repo", repo.toString(), "--chunk-size", "64K", "--encryption", "aes-256-gcm",
            "--passphrase-file", pw.toString()).ok();
        byte[] xml = "<domain type='kvm'><name>web1</name></domain>\n".getBytes(StandardCharsets.UTF_8);
        byte[] nvram = new byte[300 * 1024];
        new Random(5).nextBytes(nvram);
        String id;
        String plain;
        try (Repository r = Repository.open(repo, OpenOptions.defaults().withPassphrase(PASS))) {
            try (BackupWriter w = r.beginBackup(BackupSpec.full("web1", "vda", CS))) {
                w.putZero(0);
                w.attach("domain.xml", xml);
                w.attach("nvram.fd", nvram);
                id = w.commit().id();
            }
            try (BackupWriter w = r.beginBackup(BackupSpec.full("web1", "vdb", CS))) {
                w.putZero(0);
                plain = w.commit().id();
            }
        }

        // listed from the catalog: no passphrase needed
        String text = Cli.run("show", "--repo", repo.toString(), id).ok().stdout();
        assertTrue(text.matches("(?s).*\\nattachments: +2 files.*"), text);
        assertTrue(text.matches("(?s).*\\n  domain\\.xml +" + xml.length + " bytes\\n.*"), text);
        assertTrue(text.contains("  nvram.fd    300 KiB (307200 bytes)"), text);
        assertFalse(Cli.run("show", "--repo", repo.toString(), plain).ok().stdout().contains("attachments:"));

        JsonNode json = Cli.run("show", "--repo", repo.toString(), "--json", id).ok().json();
        assertEquals(2, json.get("attachments").size(), json.toString());
        assertEquals("domain.xml", json.get("attachments").get(0).get("name").asText());
        assertEquals(xml.length, json.get("attachments").get(0).get("size").asLong());
        assertEquals("nvram.fd", json.get("attachments").get(1).get("name").asText());
        assertEquals(nvram.length, json.get("attachments").get(1).get("size").asLong());
        assertEquals(0, Cli.run("show", "--repo", repo.toString(), "--json", plain).ok().json().get("attachments")
            .size());
        assertFalse(Cli.run("list", "--repo", repo.toString(), "--json").ok().json().get(0).has("attachments"),
            "list is unchanged");

        Object[] raw = runRaw("show", "--repo", repo.toString(), "--passphrase-file", pw.toString(), id,
            "--attachment", "nvram.fd");
        assertEquals(0, raw[0], (String) raw[2]);
        assertArrayEquals(nvram, (byte[]) raw[1]);
        raw = runRaw("show", "--repo", repo.toString(), "--passphrase-file", pw.toString(), "--disk", "vda",
            "--vm", "web1", "latest", "--attachment", "domain.xml");
        assertEquals(0, raw[0], (String) raw[2]);
        assertArrayEquals(xml, (byte[]) raw[1]);

        Cli.Result missing = Cli.run("show", "--repo", repo.toString(), "--passphrase-file", pw.toString(), id,
            "--attachment", "nope");
        assertEquals(ExitCodes.USAGE, missing.exitCode(), missing.toString());
        assertTrue(missing.stderr().contains("has no attachment named nope") && missing.stderr().contains(
            "; its attachments: ") && missing.stderr().contains("nvram.fd"), "names the ones it has: " + missing.stderr());
        // list: a disk the repository never saw is a mistake (exit 2, naming the disks it has); a filter of a
        // known disk that matches nothing is an empty answer
        Cli.Result typo = Cli.run("list", "--repo", repo.toString(), "--disk", "vdz", "--json");
        assertEquals(ExitCodes.USAGE, typo.exitCode(), typo.toString());
        assertEquals("not-found", typo.json().get("error").get("code").asText(), typo.stdout());
        assertTrue(typo.stderr().contains("has no backup of disk vdz; its disks: web1/vda"), typo.stderr());
        assertTrue(Cli.run("list", "--repo", repo.toString(), "--disk", "vda", "--label", "no=such").ok().stdout()
            .contains("No backups match."));
        Cli.Result both = Cli.run("show", "--repo", repo.toString(), "--json", id, "--attachment", "nvram.fd");
        assertEquals(ExitCodes.USAGE, both.exitCode(), both.toString());
    }
}
