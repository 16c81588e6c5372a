package io.jbackup.mount;

import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;

import java.nio.file.Path;

/** Repositories for the mount tests: one full backup of a raw disk image, served by qemu-nbd read-only. */
final class TestRepos {
    private TestRepos() {
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
