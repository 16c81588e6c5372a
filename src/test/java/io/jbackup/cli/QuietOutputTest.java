package io.jbackup.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code -q}: on success a command prints nothing on stdout except what was asked for ({@code list} still lists),
 * so cron stays silent; without it the summaries are there.
 */
class QuietOutputTest {
    @TempDir
    Path dir;

    @AfterEach
    void restoreEnv() {
        RepoOptions.env = System.getenv();
    }

    @Test
    void quietCommandsPrintOnlyWhatWasAskedFor() throws Exception {
        RepoOptions.env = java.util.Map.of();
        Path img = QemuImages.qcow2(dir.resolve("d.qcow2"), "4M");
        QemuImages.io(img, "qcow2", "write -P 7 0 1M", "write -P 9 3M 64K");
        String repo = dir.resolve("repo").toString();
        try (Proc.Background nbd = QemuImages.qemuNbd(dir, img, "qcow2", "-r")) {
            String src = QemuImages.uriOf(nbd);
            quiet("init", "-q", "--repo", repo, "--chunk-size", "64K");
            quiet("full", "-q", "--repo", repo, "--disk", "vda", "--source", src);
            Cli.Result loud = Cli.run("full", "--repo", repo, "--disk", "vda", "--source", src).ok();
            assertTrue(loud.stdout().startsWith("vda: full backup "), loud.toString());
        }
        Cli.Result list = Cli.run("list", "-q", "--repo", repo).ok();
        assertEquals(2, list.stdout().lines().filter(l -> l.contains(" full ")).count(), list.toString());
        String id = Cli.run("show", "-q", "--repo", repo, "latest", "--disk", "vda", "--json").ok().json()
            .path("id").asText();

        Path raw = dir.resolve("vda.raw");
        quiet("restore", "-q", "--repo", repo, "--disk", "vda", "--to", raw.toString());
        assertEquals(Proc.sha256(QemuImages.toRaw(img, dir.resolve("expected.raw"))), Proc.sha256(raw));

        quiet("protect", "-q", "--repo", repo, id);
        JsonNode p = Cli.run("unprotect", "--repo", repo, id, "--json").ok().json();
        assertEquals(id, p.path("unprotected").get(0).asText(), p.toString());
        quiet("verify", "-q", "--repo", repo);
        quiet("prune", "-q", "--repo", repo, "--keep-last", "1");
        quiet("gc", "-q", "--repo", repo);
        Cli.Result dry = Cli.run("forget", "-q", "--repo", repo, id, "--dry-run").ok();
        assertTrue(dry.stdout().contains("Would delete backup " + id), "a dry run is what was asked for: " + dry);
        quiet("forget", "-q", "--repo", repo, id);
        assertTrue(Cli.run("list", "--repo", repo).ok().stdout().contains("No backups yet."));
    }

    private static void quiet(String... args) {
        Cli.Result r = Cli.run(args).ok();
        assertEquals("", r.stdout(), "stdout of jbackup " + String.join(" ", args) + ": " + r);
    }
}
