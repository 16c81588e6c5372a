package io.jbackup.mount;

import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import org.junit.jupiter.api.Assumptions;

import java.nio.file.Path;

/** Repositories for the mount tests: one full backup of a raw disk image, served by qemu-nbd read-only. */
final class TestRepos {
    private TestRepos() {
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
