package io.jbackup.cli;

import io.jbackup.store.DiskLock;
import org.junit.jupiter.api.Test;

import java.time.Duration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code --wait-lock[=DURATION]}: the forms it accepts, through picocli as a user types them. */
class WaitDurationTest {
    @Test
    void formsOfTheDuration() {
        assertEquals(Duration.ofSeconds(30), WaitDuration.parse("30s"));
        assertEquals(Duration.ofSeconds(45), WaitDuration.parse("45"));
        assertEquals(Duration.ofMinutes(10), WaitDuration.parse("10m"));
        assertEquals(Duration.ofHours(1), WaitDuration.parse("1h"));
        assertEquals(Duration.ofDays(2), WaitDuration.parse("2d"));
        assertEquals(DiskLock.NO_LIMIT, WaitDuration.parse(WaitDuration.UNLIMITED));
        assertEquals(DiskLock.NO_LIMIT, WaitDuration.parse("999999999d"));
        for (String bad : new String[] {"", "-5", "1.5h", "10 m", "soon", "5w"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> WaitDuration.parse(bad));
            assertTrue(e.getMessage().contains("not a duration"), e.getMessage());
        }
    }

    private static RepoOptions parse(String... args) {
        RepoOptions o = new RepoOptions();
        new picocli.CommandLine(picocli.CommandLine.Model.CommandSpec.create().addMixin("repo",
            picocli.CommandLine.Model.CommandSpec.forAnnotatedObject(o))).parseArgs(args);
        return o;
    }

    @Test
    void theOptionWithAndWithoutAValue() {
        assertEquals(Duration.ZERO, parse().waitLock());
        assertEquals(Duration.ofMinutes(10), parse("--wait-lock=10m").waitLock());
        assertEquals(Duration.ofSeconds(120), parse("--wait-lock", "120").waitLock());
        assertEquals(DiskLock.NO_LIMIT, parse("--wait-lock").waitLock());
        assertEquals(DiskLock.NO_LIMIT, parse("--wait-lock", "--repo", "R").waitLock());
        assertThrows(picocli.CommandLine.ParameterException.class, () -> parse("--wait-lock=soon"));
    }
}
