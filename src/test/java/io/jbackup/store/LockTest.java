package io.jbackup.store;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Tag("reliability")
class LockTest {
    @TempDir
    Path tmp;

    private Path init() throws Exception {
        Path dir = tmp.resolve("repo");
        Repository.init(dir, RepositoryOptions.defaults(), null).close();
        return dir;
    }

    @Test
    void sharedOpensCoexistAndExclusiveConflictsInProcess() throws Exception {
        Path dir = init();
        try (Repository a = Repository.open(dir, OpenOptions.defaults());
             Repository b = Repository.open(dir, OpenOptions.defaults())) {
            RepositoryLockedException e = assertThrows(RepositoryLockedException.class,
                () -> Repository.open(dir, OpenOptions.defaults().withLockMode(LockMode.EXCLUSIVE)));
            assertTrue(e.getMessage().contains("already holds it shared") && e.getMessage().contains("--wait-lock"),
                e.getMessage());
        }
        Repository.open(dir, OpenOptions.defaults().withLockMode(LockMode.EXCLUSIVE)).close();
    }

    @Test
    void anotherProcessHoldingTheLockIsNamedAndWaitLockWaitsForIt() throws Exception {
        Path dir = init();
        try (Child c = Child.start(tmp.resolve("logs"), List.of("-XX:TieredStopAtLevel=1"), "hold", dir.toString(),
            "exclusive", "3000")) {
            c.awaitOutput("LOCKED", 30);
            RepositoryLockedException e = assertThrows(RepositoryLockedException.class,
                () -> Repository.open(dir, OpenOptions.defaults()));
            assertTrue(e.getMessage().contains("exclusive lock held by pid " + c.process.pid()), e.getMessage());
            try (Repository r = Repository.open(dir, OpenOptions.defaults().withWaitLock(Duration.ofSeconds(30)))) {
                assertEquals(LockMode.SHARED, r.lockMode());
            }
            assertEquals(0, c.await(30), c.describe());
        }
    }

    @Test
    void staleLockRecordOfAKilledProcessIsReportedAndRemoved() throws Exception {
        Path dir = init();
        try (Child c = Child.start(tmp.resolve("logs"), List.of("-XX:TieredStopAtLevel=1"), "hold", dir.toString(),
            "shared", "60000")) {
            c.awaitOutput("LOCKED", 30);
            c.kill(); // kill -9: the OS drops the file lock, the record stays
        }
        List<String> stale = RepositoryLock.staleRecords(dir);
        assertEquals(1, stale.size(), "record left behind: " + stale);
        try (Repository r = Repository.open(dir, OpenOptions.defaults().withLockMode(LockMode.EXCLUSIVE))) {
            assertTrue(RepositoryLock.staleRecords(dir).isEmpty());
            try (var s = Files.list(dir.resolve("locks"))) {
                assertEquals(1, s.count(), "only our own record remains");
            }
        }
        try (var s = Files.list(dir.resolve("locks"))) {
            assertFalse(s.findAny().isPresent(), "our record is removed on close");
        }
    }
}
