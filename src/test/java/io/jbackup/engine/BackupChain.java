package io.jbackup.engine;

import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A repository holding a chain of backups of one qcow2 disk made with real qemu tools: a full backup and two
 * incrementals through persistent dirty bitmaps, with partial-chunk writes, discards and zero writes in between.
 * {@code snapshots.get(i)} is a raw copy of the disk when backup {@code ids.get(i)} was taken; {@code qemuIo.get(i)}
 * are {@code qemu-io} pattern reads that hold for that state.
 *
 * <p>Disk layout (16 MiB, 64 KiB chunks):
 * <pre>
 *   b0 full: 0x11 [0, 2M)   0x22 [4M, 5M)   0x33 [10M, 10M+64k)                       rest zero
 *   b1 inc : 0x44 [100k, 104k)  discard [4M, 4.5M)  zero [10M, 10M+64k)  0x55 [12M, 13M)
 *   b2 inc : discard [12M, 12.25M)  zero [0, 512k)  0x66 [6M, 6M+128k)
 * </pre>
 */
record BackupChain(Path repo, Path image, List<String> ids, List<Path> snapshots, List<List<String>> qemuIo) {
    static final long SIZE = 16L << 20;

    /** The chain in a local repository {@code dir/repo}. */
    static BackupChain build(Path dir) {
        Path repo = dir.resolve("repo");
        Cli.run("init", "--repo", repo.toString(), "--chunk-size", "64K").ok();
        return build(dir, repo, List.of("--repo", repo.toString()));
    }

    /**
     * The chain in an initialized repository that {@code repoArgs} name to every command ({@code --repo URL} and
     * whatever else it needs: S3 endpoint, cache directory, passphrase file); {@code repo} is null unless local.
     */
    static BackupChain build(Path dir, Path repo, List<String> repoArgs) {
        return build(dir, repo, repoArgs, "qemu-nbd");
    }

    /** As above, the backups read from {@code qemuNbd} (the path of QEMU 10's: {@code Qemu10.tool("qemu-nbd")}). */
    static BackupChain build(Path dir, Path repo, List<String> repoArgs, String qemuNbd) {
        Path img = QemuImages.qcow2(dir.resolve("disk.qcow2"), "16M");
        List<String> ids = new ArrayList<>();
        List<Path> snaps = new ArrayList<>();
        List<List<String>> reads = new ArrayList<>();

        QemuImages.io(img, "qcow2", "write -P 0x11 0 2M", "write -P 0x22 4M 1M", "write -P 0x33 10M 64k");
        ids.add(backup(qemuNbd, dir, repoArgs, img, "full", null));
        snaps.add(QemuImages.toRaw(img, dir.resolve("snap0.raw")));
        reads.add(List.of("read -P 0x11 0 2M", "read -P 0 2M 2M", "read -P 0x22 4M 1M", "read -P 0x33 10M 64k",
            "read -P 0 13M 3M"));

        QemuImages.addBitmap(img, "b1");
        QemuImages.io(img, "qcow2", "write -P 0x44 100k 4k", "discard 4M 512k", "write -z 10M 64k",
            "write -P 0x55 12M 1M");
        ids.add(backup(qemuNbd, dir, repoArgs, img, "incremental", "b1"));
        snaps.add(QemuImages.toRaw(img, dir.resolve("snap1.raw")));
        reads.add(List.of("read -P 0x11 0 100k", "read -P 0x44 100k 4k", "read -P 0x11 104k 64k",
            "read -P 0 4M 512k", "read -P 0x22 4608k 512k", "read -P 0 10M 64k", "read -P 0x55 12M 1M"));

        QemuImages.addBitmap(img, "b2");
        QemuImages.io(img, "qcow2", "discard 12M 256k", "write -z 0 512k", "write -P 0x66 6M 128k");
        ids.add(backup(qemuNbd, dir, repoArgs, img, "incremental", "b2"));
        snaps.add(QemuImages.toRaw(img, dir.resolve("snap2.raw")));
        reads.add(List.of("read -P 0 0 512k", "read -P 0x11 512k 1M", "read -P 0x66 6M 128k", "read -P 0 12M 256k",
            "read -P 0x55 12544k 768k"));
        return new BackupChain(repo, img, ids, snaps, reads);
    }

    private static String backup(String qemuNbd, Path dir, List<String> repoArgs, Path img, String type,
                                 String bitmap) {
        List<String> extra = bitmap == null ? List.of("-r", "-A") : List.of("-r", "-A", "-B", bitmap);
        try (Proc.Background s = QemuImages.qemuNbd(qemuNbd, dir, img, "qcow2", extra.toArray(String[]::new))) {
            List<String> a = new ArrayList<>(List.of(type, "--disk", "vda", "--source", QemuImages.uriOf(s), "--json"));
            a.addAll(repoArgs);
            if (bitmap != null) {
                a.addAll(List.of("--bitmap", bitmap));
            }
            return Cli.run(a.toArray(String[]::new)).ok().json().get("disks").get(0).get("backupId").asText();
        }
    }
}
