package io.jbackup.store;

import io.jbackup.error.NotFoundException;
import io.jbackup.error.UsageException;
import io.jbackup.model.BackupInfo;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.time.temporal.ChronoUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ResolveTest {
    /** Always with milliseconds (Instant.toString drops a zero fraction, which would mean the whole second). */
    private static final DateTimeFormatter MILLIS = DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSSX")
        .withZone(ZoneOffset.UTC);

    @TempDir
    Path tmp;

    private static BackupInfo backup(Repository repo, String vm, String disk) throws Exception {
        try (BackupWriter w = repo.beginBackup(BackupSpec.full(vm, disk, 1 << 20))) {
            w.putChunk(0, Data.chunk(disk.hashCode(), 1 << 20), 1 << 20);
            BackupInfo b = w.commit();
            Thread.sleep(5);
            return b;
        }
    }

    @Test
    void idsPrefixesLatestAndTimes() throws Exception {
        try (Repository repo = Repository.init(tmp.resolve("repo"), RepositoryOptions.defaults(), null)) {
            BackupInfo a1 = backup(repo, "vm", "vda");
            BackupInfo a2 = backup(repo, "vm", "vda");
            BackupInfo b1 = backup(repo, null, "disk.img");
            assertTrue(a1.id().matches("\\d{8}-\\d{6}-[0-9a-f]{6}"), a1.id());

            assertEquals(a1, repo.resolve(null, null, a1.id()));
            assertEquals(a2, repo.resolve("vm", "vda", a2.id().substring(0, 20)));
            assertEquals(a2, repo.resolve("vm", "vda", "latest"));
            assertEquals(b1, repo.resolve(null, "disk.img", "latest"));
            assertEquals(a1, repo.resolve("vm", "vda", "@" + MILLIS.format(a1.created())));
            assertEquals(a1, repo.resolve("vm", "vda", "@" + MILLIS.format(a2.created().minusMillis(1))));
            // a time to the second (as 'list' shows it) or minute means the end of it: the backup created within
            // that second is found, not the one before it (or none)
            Instant second = a2.created().truncatedTo(ChronoUnit.SECONDS);
            assertEquals(a2, repo.resolve("vm", "vda", "@" + second));
            assertEquals(a2, repo.resolve("vm", "vda", "@" + LocalDateTime.ofInstant(second, ZoneId.systemDefault())
                .truncatedTo(ChronoUnit.MINUTES)));
            assertEquals(a2, repo.resolve("vm", "vda", "@" + Instant.now().plusSeconds(3600)));

            // what the user named does not exist or is ambiguous: usage errors (exit 2), not repository errors
            UsageException e = assertThrows(NotFoundException.class,
                () -> repo.resolve("vm", "vda", "@" + a1.created().minusSeconds(60)));
            assertTrue(e.getMessage().contains("no complete backup of vm/vda at or before"), e.getMessage());
            e = assertThrows(UsageException.class, () -> repo.resolve(null, null, a1.id().substring(0, 8)));
            assertTrue(e.getMessage().contains("ambiguous") && e.getMessage().contains(a1.id()), e.getMessage());
            e = assertThrows(NotFoundException.class, () -> repo.resolve(null, null, "1999"));
            assertTrue(e.getMessage().contains("no backup matches '1999'"), e.getMessage());
            e = assertThrows(NotFoundException.class, () -> repo.resolve(null, "disk.img", a1.id()));
            assertTrue(e.getMessage().contains("is of vm/vda, not disk.img"), e.getMessage());
            UsageException ie = assertThrows(UsageException.class,
                () -> repo.resolve("vm", "vda", "@yesterday"));
            assertTrue(ie.getMessage().contains("ISO-8601"), ie.getMessage());
            assertEquals(a1.created().toEpochMilli() <= Repository.parseTime("2999-01-01").toEpochMilli(), true);

            // the only backup of a disk marked bad (verify --repair): 'latest' names it and the way to salvage it
            repo.markBad(b1.id(), "test");
            e = assertThrows(NotFoundException.class, () -> repo.resolve(null, "disk.img", "latest"));
            assertTrue(e.getMessage().contains("backup " + b1.id() + " is marked bad")
                && e.getMessage().contains("--backup " + b1.id() + " --ignore-errors"), e.getMessage());
            assertEquals(b1.id(), repo.resolve(null, "disk.img", b1.id()).id(), "by id a bad backup is still named");
        }
    }

    /**
     * 'latest' of a disk named without the VM whose set holds it (a domain backed up by name, restored with --disk
     * alone) said only "no complete backup of vda": the message names the --vm that finds it.
     */
    @Test
    void latestOfADiskNamedWithoutItsVmNamesTheVm() throws Exception {
        try (Repository repo = Repository.init(tmp.resolve("repo"), RepositoryOptions.defaults(), null)) {
            backup(repo, "web1", "vda");
            backup(repo, "db1", "vda");
            backup(repo, null, "disk.img");
            NotFoundException e = assertThrows(NotFoundException.class, () -> repo.resolve(null, "vda", "latest"));
            assertTrue(e.getMessage().contains("no complete backup of vda in repository")
                && e.getMessage().contains("disk vda has backups with --vm db1, --vm web1"), e.getMessage());
            e = assertThrows(NotFoundException.class, () -> repo.resolve("web1", "disk.img", "latest"));
            assertTrue(e.getMessage().contains("disk disk.img has backups with no --vm"), e.getMessage());
            e = assertThrows(NotFoundException.class, () -> repo.resolve(null, "vdz", "latest"));
            assertTrue(!e.getMessage().contains("has backups with"), e.getMessage());
        }
    }
}
