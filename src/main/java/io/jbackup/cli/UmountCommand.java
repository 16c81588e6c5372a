package io.jbackup.cli;

import io.jbackup.error.NotFoundException;
import io.jbackup.mount.Cleanup;
import io.jbackup.mount.MountState;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Parameters;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * {@code jbackup umount}: ends a {@code jbackup mount} (SIGTERM to its process, which unmounts everything), or
 * removes what a killed one left behind.
 */
@Command(name = "umount", mixinStandardHelpOptions = true,
    description = {"Unmount what 'jbackup mount' mounted on MOUNTPOINT: the running mount is told to stop (it "
        + "unmounts everything and exits); the leftovers of a killed one (mounts, loop devices, nbdfuse) are "
        + "removed here. Leftovers of other killed mounts are removed too."})
public final class UmountCommand implements java.util.concurrent.Callable<Integer> {
    /** How long the running mount has to unmount after SIGTERM before this command does it. */
    static final long GRACE_SECONDS = 60;

    @Mixin
    JsonMixin json;
    @Mixin
    LoggingMixin logging;

    @Parameters(index = "0", paramLabel = "MOUNTPOINT", description = "The directory given to 'jbackup mount'.")
    Path mountpoint;

    @Override
    public Integer call() throws Exception {
        Path mp = mountpoint.toAbsolutePath().normalize();
        Path dir = MountState.dirOf(mp);
        MountState s = MountState.load(dir);
        String how;
        if (s != null && s.ownerAlive()) {
            ProcessHandle owner = ProcessHandle.of(s.data().pid).orElseThrow();
            owner.destroy(); // SIGTERM: the mount unmounts everything and exits
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(GRACE_SECONDS);
            while (owner.isAlive() && System.nanoTime() < deadline) {
                Thread.sleep(50);
            }
            if (owner.isAlive()) { // stuck: end it; what it left is removed below
                owner.destroyForcibly();
                owner.onExit().get(10, TimeUnit.SECONDS);
            }
            how = "stopped the mount (process " + s.data().pid + ")";
        } else {
            how = null;
        }
        List<String> cleaned = Cleanup.leftovers(); // a killed mount, or what a stopped one could not remove
        if (how == null) {
            if (!cleaned.contains(mp.toString())) {
                throw new NotFoundException("nothing of jbackup is mounted on " + mp + " ('jbackup mount' records "
                    + "its mounts in " + MountState.ROOT + ")");
            }
            how = "removed the leftovers of a killed mount";
        }
        if (Files.exists(dir)) {
            throw new io.jbackup.engine.ExternalToolException("could not unmount everything on " + mp
                + " (a file or directory there may be in use; see 'jbackup umount -v'); run 'jbackup umount " + mp
                + "' again when it is not");
        }
        if (json.enabled()) {
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("status", "ok");
            out.put("mountpoint", mp.toString());
            out.put("action", how);
            out.put("leftoversRemoved", cleaned);
            json.print(out);
        } else if (!logging.quiet) {
            System.out.println("jbackup: unmounted " + mp + ": " + how);
        }
        return ExitCodes.OK;
    }
}
