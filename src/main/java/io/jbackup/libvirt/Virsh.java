package io.jbackup.libvirt;

import io.jbackup.engine.ExternalToolException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.File;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * libvirt through {@code virsh}: one process per command, {@code -c URI} when a URI is given (otherwise virsh's own
 * defaults apply: {@code LIBVIRT_DEFAULT_URI}, {@code VIRSH_DEFAULT_CONNECT_URI}, then {@code qemu:///system} for
 * root). XML documents go through temporary files, written and parsed with {@link DomainXml}'s XML API.
 *
 * <p>Why virsh and not a Java binding: the Java binding ({@code org.libvirt:libvirt}, JNA) has no entry points for
 * the backup and checkpoint APIs ({@code virDomainBackupBegin}, {@code virDomainCheckpointCreateXML}) and is not
 * published to Maven Central in a current version; virsh is installed with every libvirt ({@code libvirt-clients})
 * and speaks every API of the daemon it talks to.
 *
 * <p>Errors are typed from virsh's {@code error:} lines: {@link DomainNotFoundException} (no such domain),
 * {@link LibvirtConnectionException} (libvirtd unreachable), {@link DomainBusyException} (another job holds the
 * domain), otherwise {@link LibvirtException} with libvirt's message.
 */
public final class Virsh {
    private static final Logger LOG = LoggerFactory.getLogger(Virsh.class);
    /** The URI used when none is given and the environment names none. */
    public static final String DEFAULT_URI = "qemu:///system";

    private final String uri;
    private final Duration timeout;
    private final String binary;

    /**
     * @param uri     the connection URI, or null for libvirt's environment ({@code LIBVIRT_DEFAULT_URI}) and then
     *                {@value #DEFAULT_URI}
     * @param timeout bound of one command
     */
    public Virsh(String uri, Duration timeout) throws ExternalToolException {
        if (uri == null && System.getenv("LIBVIRT_DEFAULT_URI") == null
            && System.getenv("VIRSH_DEFAULT_CONNECT_URI") == null) {
            uri = DEFAULT_URI;
        }
        this.uri = uri;
        this.timeout = timeout;
        this.binary = locate();
    }

    private static String locate() throws ExternalToolException {
        for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(File.pathSeparator)) {
            Path p = Path.of(dir.isEmpty() ? "." : dir, "virsh");
            if (Files.isExecutable(p)) {
                return p.toString();
            }
        }
        throw new ExternalToolException("virsh is not installed (Debian/Ubuntu: apt-get install libvirt-clients; "
            + "Fedora/RHEL: dnf install libvirt-client)");
    }

    /** The URI commands connect to, as given (null: libvirt's environment). */
    public String uri() {
        return uri;
    }

    /** Output of one virsh command. */
    public record Output(int exitCode, String stdout, String stderr) {
    }

    /** Runs {@code virsh [-c URI] ARGS}; throws the typed exception for a failure. {@code what} is for messages. */
    public String run(String what, String... args) throws IOException {
        Output o = exec(args);
        if (o.exitCode() != 0) {
            throw failure(what, o.stderr());
        }
        return o.stdout();
    }

    /** Runs a command and returns its output without interpreting a failure. */
    public Output exec(String... args) throws IOException {
        List<String> cmd = new ArrayList<>();
        cmd.add(binary);
        if (uri != null) {
            cmd.add("-c");
            cmd.add(uri);
        }
        cmd.add("-q");
        cmd.addAll(Arrays.asList(args));
        LOG.debug("running {}", cmd);
        Process p = new ProcessBuilder(cmd).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
            .start();
        CompletableFuture<byte[]> out = CompletableFuture.supplyAsync(() -> readAll(p.getInputStream()));
        CompletableFuture<byte[]> err = CompletableFuture.supplyAsync(() -> readAll(p.getErrorStream()));
        try {
            if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                p.destroyForcibly();
                throw new LibvirtException("virsh " + String.join(" ", args) + " did not finish within "
                    + timeout.toSeconds() + " s (is libvirtd" + (uri == null ? "" : " at " + uri) + " hanging?)");
            }
            return new Output(p.exitValue(), new String(out.join(), StandardCharsets.UTF_8),
                new String(err.join(), StandardCharsets.UTF_8));
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while running virsh " + String.join(" ", args));
        }
    }

    private static byte[] readAll(java.io.InputStream in) {
        try (in) {
            return in.readAllBytes();
        } catch (IOException e) {
            return new byte[0];
        }
    }

    /** The typed exception for virsh's error output {@code stderr} of a failed {@code what}. */
    LibvirtException failure(String what, String stderr) {
        String msg = stderr.lines().map(String::strip).filter(l -> !l.isEmpty())
            .map(l -> l.startsWith("error: ") ? l.substring(7) : l).reduce((a, b) -> a + ": " + b)
            .orElse("virsh failed without a message");
        String lower = msg.toLowerCase(Locale.ROOT);
        String where = uri == null ? "" : " at " + uri;
        if (lower.contains("failed to connect to the hypervisor") || lower.contains("failed to connect socket")) {
            return new LibvirtConnectionException(what + ": cannot reach libvirt" + where + ": " + msg
                + "; is libvirtd running (systemctl start libvirtd), and is --connect right?");
        }
        if (lower.contains("domain not found") || lower.contains("failed to get domain")) {
            throw new DomainNotFoundException(what + ": " + msg + where + "; 'virsh list --all' shows the domains");
        }
        if (lower.contains("cannot acquire state change lock") || lower.contains("another job")
            || lower.contains("already an active") || lower.contains("job is active")
            || lower.contains("domain has active block job")) {
            return new DomainBusyException(what + ": another job runs on the domain: " + msg
                + "; wait for it to end ('virsh domjobinfo DOMAIN')");
        }
        return new LibvirtException(what + ": " + msg);
    }

    // ------------------------------------------------------------ domain commands

    /** The domain's XML: the running definition, or with {@code inactive} the persistent one. */
    public String dumpXml(String domain, boolean inactive) throws IOException {
        return inactive ? run("reading the definition of domain " + domain, "dumpxml", "--inactive", "--security-info",
            domain) : run("reading domain " + domain, "dumpxml", domain);
    }

    /** Whether libvirt knows a domain of that name (running or not); a connection failure is thrown. */
    public boolean exists(String domain) throws IOException {
        Output o = exec("domstate", domain);
        if (o.exitCode() == 0) {
            return true;
        }
        try {
            throw failure("looking up domain " + domain, o.stderr());
        } catch (DomainNotFoundException e) { // failure() throws this one rather than returning it
            return false;
        }
    }

    /** {@code virsh domstate}: running, paused, shut off, ... */
    public String state(String domain) throws IOException {
        return run("reading the state of domain " + domain, "domstate", domain).strip();
    }

    /** The operation of the domain's active job ({@code Backup}, {@code Migration out}, ...), or null when none. */
    public String activeJob(String domain) throws IOException {
        String info = run("reading the jobs of domain " + domain, "domjobinfo", domain);
        String type = null;
        String op = null;
        for (String line : info.lines().toList()) {
            int colon = line.indexOf(':');
            if (colon < 0) {
                continue;
            }
            String k = line.substring(0, colon).strip();
            String v = line.substring(colon + 1).strip();
            if (k.equals("Job type")) {
                type = v;
            } else if (k.equals("Operation")) {
                op = v;
            }
        }
        return type == null || type.equalsIgnoreCase("None") ? null : (op == null ? type : op);
    }

    /** The unix socket of the domain's pull-mode backup job ({@code backup-dumpxml}), or null. */
    public String backupSocket(String domain) throws IOException {
        Output out = exec("backup-dumpxml", domain);
        if (out.exitCode() != 0) {
            return null;
        }
        return DomainXml.backupSocket(out.stdout());
    }

    /** Names of the domain's checkpoints. */
    public List<String> checkpoints(String domain) throws IOException {
        return run("listing the checkpoints of domain " + domain, "checkpoint-list", domain, "--name").lines()
            .map(String::strip).filter(s -> !s.isEmpty()).toList();
    }

    /**
     * The disks of a running domain's checkpoint whose bitmap is intact ({@code checkpoint-dumpxml --size}: libvirt
     * sizes only a bitmap that exists and is consistent). A disk missing here cannot be read incrementally from the
     * checkpoint: {@code backup-begin} would refuse it ("missing or broken bitmap").
     */
    public java.util.Set<String> checkpointIntactDisks(String domain, String checkpoint) throws IOException {
        return DomainXml.checkpointDisksWithSize(run("reading checkpoint " + checkpoint + " of domain " + domain,
            "checkpoint-dumpxml", domain, checkpoint, "--size", "--no-domain"));
    }

    /** Deletes a checkpoint; its bitmaps are merged by libvirt so no write is lost. */
    public void deleteCheckpoint(String domain, String name, boolean metadataOnly) throws IOException {
        if (metadataOnly) {
            run("deleting checkpoint " + name + " of domain " + domain, "checkpoint-delete", domain, name,
                "--metadata");
        } else {
            run("deleting checkpoint " + name + " of domain " + domain, "checkpoint-delete", domain, name);
        }
    }

    /** Starts a pull-mode backup job with a new checkpoint (both XML documents). */
    public void backupBegin(String domain, String backupXml, String checkpointXml, Path tmpDir) throws IOException {
        Path b = Files.createTempFile(tmpDir, "backup", ".xml");
        Path c = Files.createTempFile(tmpDir, "checkpoint", ".xml");
        try {
            Files.writeString(b, backupXml);
            Files.writeString(c, checkpointXml);
            run("starting the backup job of domain " + domain, "backup-begin", domain, b.toString(), c.toString());
        } finally {
            Files.deleteIfExists(b);
            Files.deleteIfExists(c);
        }
    }

    /** Ends the domain's active job ({@code domjobabort}): for a pull-mode backup, its normal end. */
    public void abortJob(String domain) throws IOException {
        run("ending the backup job of domain " + domain, "domjobabort", domain);
    }

    /** {@link #abortJob}, then waits (up to 5 s) until libvirt reports no job: it ends one asynchronously. */
    public void abortJobAndWait(String domain) throws IOException, InterruptedException {
        abortJob(domain);
        for (int i = 0; i < 100 && activeJob(domain) != null; i++) {
            Thread.sleep(50); // libvirt ends the job (and deletes its scratch files) asynchronously
        }
    }

    /** Whether the QEMU guest agent answers a ping within {@code seconds}. */
    public boolean agentAnswers(String domain, int seconds) throws IOException {
        Output o = exec("qemu-agent-command", domain, "{\"execute\":\"guest-ping\"}", "--timeout",
            Integer.toString(seconds));
        LOG.debug("guest-ping of {}: exit {} {}", domain, o.exitCode(), o.stderr().strip());
        return o.exitCode() == 0;
    }

    /** Freezes the guest's filesystems through the guest agent. */
    public void freeze(String domain) throws IOException {
        run("freezing the filesystems of domain " + domain, "domfsfreeze", domain);
    }

    /** Thaws the guest's filesystems. */
    public void thaw(String domain) throws IOException {
        run("thawing the filesystems of domain " + domain, "domfsthaw", domain);
    }

    /** Defines a domain from its XML; returns its name as libvirt reports it. */
    public void define(String xml, Path tmpDir) throws IOException {
        Path f = Files.createTempFile(tmpDir, "domain", ".xml");
        try {
            Files.writeString(f, xml);
            run("defining the domain", "define", f.toString());
        } finally {
            Files.deleteIfExists(f);
        }
    }

    /** Starts a defined domain. */
    public void start(String domain) throws IOException {
        run("starting domain " + domain, "start", domain);
    }
}
