package io.jbackup.packaging;

import io.jbackup.packaging.InstalledLayout.Run;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The launcher under a locale that is not UTF-8 (LANG=C, or none: cron, systemd units, ssh without locale
 * forwarding): JDK 17 would map file names to ASCII and fail on every non-ASCII path as a bug (exit 1); the launcher
 * runs Java in C.UTF-8 instead, so such names work and print as they are.
 */
class LauncherLocaleTest {
    @TempDir
    static Path prefix;

    @Test
    void nonAsciiPathsWorkUnderTheCLocale() throws Exception {
        InstalledLayout layout = InstalledLayout.install(prefix);
        for (String lang : new String[] {"C", ""}) {
            Path repo = prefix.resolve("dépôt-" + (lang.isEmpty() ? "none" : lang));
            Map<String, String> env = new HashMap<>(Map.of("LANG", lang, "LC_ALL", "", "LC_CTYPE", ""));
            Run init = layout.launch(env, "init", "--repo", repo.toString());
            assertEquals(0, init.exit(), "LANG=" + lang + ": " + init.stdout() + init.stderr());
            assertTrue(init.stdout().contains(repo.toString()), "named as it is: " + init.stdout());
            assertTrue(Files.isRegularFile(repo.resolve("config.json")), "in the directory of that name");
            Run list = layout.launch(env, "list", "--repo", repo.toString());
            assertEquals(0, list.exit(), list.stdout() + list.stderr());
        }
    }
}
