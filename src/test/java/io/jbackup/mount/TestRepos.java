package io.jbackup.mount;

import io.jbackup.catalog.ChunkLocation;
import io.jbackup.store.BackupReader;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Repository;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import org.junit.jupiter.api.Assumptions;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Path;

/** Repositories for the mount tests: one full backup of a raw disk image, served by qemu-nbd read-only. */
final class TestRepos {
    private TestRepos() {
    }

    /** Flips a bit in the middle of chunk {@code index} of backup {@code backupId} in its pack file of {@code repo}. */
    static void damageChunk(Path repo, String backupId, long index) throws IOException {
        try (Repository r = Repository.open(repo, OpenOptions.defaults()); BackupReader br = r.openBackup(backupId)) {
            ChunkLocation loc = r.chunkLocation(br.digest(index));
            Path pack = repo.resolve("packs").resolve(loc.pack().substring(0, 2)).resolve(loc.pack() + ".pack");
            try (RandomAccessFile f = new RandomAccessFile(pack.toFile(), "rw")) {
                long at = loc.offset() + loc.length() / 2;
                f.seek(at);
                int v = f.read();
                f.seek(at);
                f.write(v ^ 0x10);
            }
        }
    }

    /** Skips the test unless it runs as root (mounting needs it) and fails it when one of {@code tools} is missing. */
    static void requireRootAnd(String... tools) {
        Assumptions.assumeTrue("root".equals(System.getProperty("user.name")), "mount needs root");
        for (String t : tools) {
            Proc.requireTool(t);
        }
    }

    /** Makes {@code dir/disk.raw}: ext4 of {@code size} on the whole disk, holding {@code src}; backs it up. */
    static Path backUpExt4(Path dir, Path src, String size) {
        Path disk = dir.resolve("disk.raw");
        Proc.run("mkfs.ext4", "-q", "-b", "4096", "-E", "root_owner=0:0", "-d", src.toString(), disk.toString(), size);
        return backUp(dir, disk);
    }

    /** Initialises {@code dir/repo} (64 KiB chunks) with a full backup of {@code disk} as disk vda; returns it. */
    static Path backUp(Path dir, Path disk) {
        Path repo = dir.resolve("repo");
        Cli.run("init", "--repo", repo.toString(), "--chunk-size", "64K").ok();
        try (Proc.Background s = QemuImages.qemuNbd(dir, disk, "raw", "-r")) {
            Cli.run("full", "--repo", repo.toString(), "--disk", "vda", "--source", QemuImages.uriOf(s)).ok();
        }
        return repo;
    }
}
