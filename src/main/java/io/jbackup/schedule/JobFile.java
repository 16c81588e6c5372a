package io.jbackup.schedule;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.jbackup.engine.BackupMode;
import io.jbackup.error.NotFoundException;
import io.jbackup.error.UsageException;
import io.jbackup.store.RepositoryLocation;
import io.jbackup.store.RepositoryLocations;
import io.jbackup.store.RetentionPolicy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.DateTimeException;
import java.time.Duration;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * A job file: what {@code run-due} and {@code daemon} back up, when, and how long they keep it. YAML (or JSON, which
 * is YAML too), validated up front: every error names the file and the field. Unknown keys are errors, so a typo
 * never silently disables a rule.
 *
 * <pre>
 * repository: /var/backups/jbackup        # required: a directory, or s3://BUCKET/PREFIX
 * passphraseFile: /etc/jbackup/passphrase # encrypted repositories (else $JBACKUP_PASSPHRASE)
 * timezone: Europe/Berlin                  # for cron times and retention buckets (default: the system's)
 * state: /var/lib/jbackup/nightly.json     # last runs (default: REPOSITORY/schedule/FILE-NAME.json; for s3://,
 *                                          #   CACHE-DIR/schedule/s3/BUCKET/PREFIX/FILE-NAME.json)
 * s3Endpoint: https://s3.example.net       # s3:// only, as --s3-endpoint (default: $AWS_ENDPOINT_URL_S3, ...)
 * s3Region: eu-central-1                   # s3:// only, as --s3-region
 * s3PathStyle: true                        # s3:// only, as --s3-path-style
 * cacheDir: /var/cache/jbackup             # s3:// only, as --cache-dir (default: $XDG_CACHE_HOME/jbackup, else
 *                                          #   ~/.cache/jbackup); credentials come from the AWS default chain
 * jobs:
 *   - name: web1                           # unique; letters, digits, . _ -
 *     vm: web1                             # optional: the disks form one backup set of this VM
 *     schedule: "30 2 * * *"               # cron: 5 fields, or 6 with seconds first
 *     mode: auto                           # full | incremental | auto (default)
 *     bitmap: jbackup                      # default dirty bitmap of the disks
 *     connections: 1
 *     timeout: 120                         # seconds to wait for one NBD reply (and at most 30 s for a handshake)
 *     retries: 5                           # reconnects without progress before the disk fails
 *     labels: {env: prod}
 *     tls: {creds: /etc/pki/qemu}          # or {pskFile: keys.psk, username: qemu}; hostname, verify
 *     disks:
 *       - {name: vda, source: "nbd+unix:///vda?socket=/run/web1-nbd.sock", bitmap: jbackup}
 *       - {name: vdb, image: /var/lib/images/web1-data.qcow2}   # an offline qcow2 image (VM off): jbackup serves
 *                                          #   it and rotates its dirty bitmaps, as auto --image --rotate-bitmap
 *   - name: vm2                            # a running QEMU that jbackup drives (docs/live-backup.md):
 *     vm: vm2                              # fleecing export and bitmaps are jbackup's
 *     schedule: "0 3 * * *"
 *     qmp: {socket: /run/vm2/jbackup.qmp, qga: /run/vm2/qga.sock, scratchDir: /var/tmp, timeout: 30}
 *     disks:
 *       - {name: vda, node: vda}           # or device: virtio-disk0
 *   - name: db1                            # a libvirt domain by its name (docs/libvirt.md): every disk it has,
 *     domain: db1                          #   in place of disks (vm defaults to the domain's name)
 *     schedule: "0 1 * * *"
 *     libvirt: {connect: "qemu:///system", excludeDisks: [vdc], quiesce: true, scratchDir: /var/tmp}
 *     retention: {keepLast: 3, keepDaily: 7, keepWeekly: 4, keepMonthly: 12, keepYearly: 2, keepWithin: 2d}
 * verify: {schedule: "0 5 * * 0", sample: 10}
 * gc: {schedule: "0 6 * * 0", repackThreshold: 50, grace: 48h}   # grace: s3:// only, as gc --grace (default 24h)
 * </pre>
 */
public record JobFile(Path file, RepositoryLocation repository, Path passphraseFile, Path stateFile, ZoneId zone, List<Job> jobs,
                      Task verify, Task gc) {
    private static final int MAX_FILE = 1 << 20;
    private static final String NAME = "[A-Za-z0-9][A-Za-z0-9._-]{0,63}";

    /** One scheduled backup set. */
    public record Job(String name, String vm, CronSchedule schedule, BackupMode mode, List<Disk> disks,
                      Map<String, String> labels, int connections, Map<String, String> tls, Map<String, String> qmp,
                      RetentionPolicy retention, int timeoutSeconds, int retries, Domain domain) {
        /** Defaults of {@code timeout} and {@code retries}, the same as {@code jbackup full}'s. */
        public static final int DEFAULT_TIMEOUT = 120;
        public static final int DEFAULT_RETRIES = 5;
    }

    /**
     * One disk of a job: its NBD source and dirty bitmap (null for none); or an offline qcow2 image that jbackup
     * serves itself with its bitmaps rotated ({@code image:}, the bitmap then only starts a chain); or, for a live
     * job ({@code qmp:}), its block node or guest device.
     */
    public record Disk(String name, String source, String bitmap, String node, String device, Path image) {
    }

    /**
     * A libvirt domain job ({@code domain: NAME}, options under {@code libvirt:}).
     *
     * @param name       the domain
     * @param connect    connection URI, or null for libvirt's default
     * @param exclude    disk targets left out
     * @param quiesce    true/false, or null for "when the guest agent answers"
     * @param scratchDir parent of the scratch directory, or null
     */
    public record Domain(String name, String connect, List<String> exclude, Boolean quiesce, Path scratchDir) {
    }

    /** Whether the job backs up a running QEMU through QMP ({@code qmp: {socket: ...}}). */
    static boolean live(Map<String, String> qmp) {
        return !qmp.isEmpty();
    }

    /**
     * The verify or gc cadence.
     *
     * @param value sample percent (verify) or repack threshold percent (gc)
     */
    public record Task(CronSchedule schedule, double value, Duration grace) {
    }

    /** Reads and validates a job file. */
    public static JobFile read(Path file) throws IOException {
        if (!Files.isRegularFile(file)) {
            throw new NotFoundException("job file " + file + " does not exist");
        }
        if (Files.size(file) > MAX_FILE) {
            throw new UsageException("job file " + file + " is over 1 MiB; is it the right file?");
        }
        JsonNode root;
        try {
            root = new ObjectMapper(new YAMLFactory()).readTree(Files.readAllBytes(file));
        } catch (IOException e) {
            throw new UsageException("job file " + file + " is not valid YAML/JSON: "
                + e.getMessage().lines().findFirst().orElse(""));
        }
        return parse(file, root);
    }

    static JobFile parse(Path file, JsonNode root) {
        Ctx c = new Ctx(file);
        if (root == null || !root.isObject()) {
            throw c.fail("", "must be a mapping with repository and jobs");
        }
        c.keys(root, "", Set.of("repository", "passphraseFile", "timezone", "state", "jobs", "verify", "gc",
            "s3Endpoint", "s3Region", "s3PathStyle", "cacheDir"));
        Path base = file.toAbsolutePath().getParent();
        RepositoryLocation repo = location(c, root, base);
        Path pass = c.path(root, "passphraseFile", base, false);
        ZoneId zone = ZoneId.systemDefault();
        if (root.has("timezone")) {
            try {
                zone = ZoneId.of(c.text(root, "timezone", true));
            } catch (DateTimeException e) {
                throw c.fail("timezone", "'" + root.get("timezone").asText() + "' is not a time zone (e.g. UTC, "
                    + "Europe/Berlin)");
            }
        }
        Path state = c.path(root, "state", base, false);
        if (state == null) {
            String stem = file.getFileName().toString().replaceFirst("\\.(ya?ml|json)$", "");
            String name = stem.replaceAll("[^A-Za-z0-9._-]", "_") + ".json";
            state = repo instanceof RepositoryLocation.Remote r
                ? r.cacheRoot().resolve("schedule").resolve("s3")
                    .resolve(r.url().substring(RepositoryLocations.S3_SCHEME.length())).resolve(name)
                : ((RepositoryLocation.Local) repo).dir().resolve("schedule").resolve(name);
        }
        JsonNode jobsNode = root.get("jobs");
        if (jobsNode == null || !jobsNode.isArray() || jobsNode.isEmpty()) {
            throw c.fail("jobs", "is missing or empty; list at least one job with name, schedule and disks");
        }
        List<Job> jobs = new ArrayList<>();
        Set<String> names = new HashSet<>();
        Set<String> disks = new HashSet<>();
        for (int i = 0; i < jobsNode.size(); i++) {
            Job j = job(c, "jobs[" + i + "]", jobsNode.get(i), zone, base);
            if (!names.add(j.name())) {
                throw c.fail("jobs[" + i + "].name", "'" + j.name() + "' is used by two jobs");
            }
            for (Disk d : j.disks()) {
                String key = (j.vm() == null ? "" : j.vm()) + "/" + d.name();
                if (!disks.add(key)) {
                    throw c.fail("jobs[" + i + "]", "disk " + key + " is backed up by two jobs; give each disk one job "
                        + "(several schedules of one disk would race for its bitmap)");
                }
            }
            jobs.add(j);
        }
        Task verify = task(c, root, "verify", "sample", 100, 0.001, 100);
        Task gc = task(c, root, "gc", "repackThreshold", 50, 0, 100, "grace");
        return new JobFile(file, repo, pass, state, zone, List.copyOf(jobs), verify, gc);
    }

    /**
     * {@code repository:}: a directory (relative to the job file's) or {@code s3://BUCKET/PREFIX} with the optional
     * {@code s3Endpoint}, {@code s3Region}, {@code s3PathStyle} and {@code cacheDir}, which a directory refuses.
     */
    private static RepositoryLocation location(Ctx c, JsonNode root, Path base) {
        String repo = c.text(root, "repository", true);
        if (!repo.startsWith(RepositoryLocations.S3_SCHEME)) {
            for (String k : List.of("s3Endpoint", "s3Region", "s3PathStyle", "cacheDir")) {
                if (root.has(k)) {
                    throw c.fail(k, "applies to s3:// repositories only (repository is " + repo + ")");
                }
            }
            RepositoryLocations.refuseUrl(repo).ifPresent(why -> {
                throw c.fail("repository", "'" + repo + "': " + why);
            });
            return new RepositoryLocation.Local(base.resolve(repo).normalize());
        }
        Boolean pathStyle = null;
        if (root.has("s3PathStyle")) {
            JsonNode v = root.get("s3PathStyle");
            if (!v.isBoolean()) {
                throw c.fail("s3PathStyle", "'" + v.asText() + "' (expected true or false)");
            }
            pathStyle = v.asBoolean();
        }
        try {
            return RepositoryLocations.parse(repo, c.text(root, "s3Endpoint", false), c.text(root, "s3Region", false),
                pathStyle, c.path(root, "cacheDir", base, false), System.getenv());
        } catch (UsageException e) {
            throw c.fail("", e.getMessage().replace("--s3-endpoint", "s3Endpoint"));
        }
    }

    private static Job job(Ctx c, String at, JsonNode n, ZoneId zone, Path base) {
        if (n == null || !n.isObject()) {
            throw c.fail(at, "must be a mapping");
        }
        c.keys(n, at, Set.of("name", "vm", "schedule", "mode", "bitmap", "connections", "timeout", "retries",
            "labels", "tls", "qmp", "disks", "retention", "domain", "libvirt"));
        String name = c.text(n, "name", true, at);
        if (!name.matches(NAME)) {
            throw c.fail(at + ".name", "'" + name + "' must be 1-64 letters, digits, '.', '_' or '-'");
        }
        String vm = c.text(n, "vm", false, at);
        if (vm != null && !vm.matches("[A-Za-z0-9][A-Za-z0-9._-]{0,127}")) {
            throw c.fail(at + ".vm", "'" + vm + "' must be letters, digits, '.', '_' or '-'");
        }
        CronSchedule schedule;
        try {
            schedule = CronSchedule.parse(c.text(n, "schedule", true, at));
        } catch (IllegalArgumentException e) {
            throw c.fail(at + ".schedule", e.getMessage());
        }
        BackupMode mode = BackupMode.AUTO;
        String m = c.text(n, "mode", false, at);
        if (m != null) {
            try {
                mode = BackupMode.valueOf(m.toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw c.fail(at + ".mode", "'" + m + "' (expected: full, incremental or auto)");
            }
        }
        String bitmap = c.text(n, "bitmap", false, at);
        Map<String, String> qmp = c.stringMap(n, "qmp", at);
        c.keys(n.path("qmp"), at + ".qmp", Set.of("socket", "qga", "qgaTimeout", "nbdServer", "scratchDir",
            "timeout"));
        boolean live = live(qmp);
        if (live && !qmp.containsKey("socket")) {
            throw c.fail(at + ".qmp", "needs socket: the QMP monitor socket of the running VM");
        }
        for (String k : List.of("qgaTimeout", "timeout")) {
            if (qmp.containsKey(k) && !qmp.get(k).matches("[1-9][0-9]{0,3}")) {
                throw c.fail(at + ".qmp." + k, "'" + qmp.get(k) + "' (expected seconds, 1 .. 3600)");
            }
        }
        int connections = n.has("connections") ? c.integer(n, "connections", at, 1, 16) : 1;
        int timeout = n.has("timeout") ? c.integer(n, "timeout", at, 1, 86_400) : Job.DEFAULT_TIMEOUT;
        int retries = n.has("retries") ? c.integer(n, "retries", at, 0, 100) : Job.DEFAULT_RETRIES;
        Domain domain = null;
        String domainName = c.text(n, "domain", false, at);
        if (domainName == null && n.has("libvirt")) {
            throw c.fail(at + ".libvirt", "needs domain: NAME on the job");
        }
        if (domainName != null) {
            if (n.has("disks") || live) {
                throw c.fail(at, "domain: backs up every disk of the domain: drop disks and qmp (leave disks out "
                    + "with libvirt: {excludeDisks: [vdb]})");
            }
            JsonNode lv = n.path("libvirt");
            c.keys(lv, at + ".libvirt", Set.of("connect", "excludeDisks", "quiesce", "scratchDir"));
            List<String> exclude = new ArrayList<>();
            JsonNode ex = lv.path("excludeDisks");
            if (!ex.isMissingNode() && !ex.isArray()) {
                throw c.fail(at + ".libvirt.excludeDisks", "must be a list such as [vdb, sdc]");
            }
            ex.forEach(x -> exclude.add(x.asText()));
            JsonNode q = lv.path("quiesce");
            if (!q.isMissingNode() && !q.isBoolean()) {
                throw c.fail(at + ".libvirt.quiesce", "must be true or false (default: when the agent answers)");
            }
            String scratch = lv.path("scratchDir").isMissingNode() ? null : lv.path("scratchDir").asText();
            domain = new Domain(domainName, lv.path("connect").isMissingNode() ? null : lv.path("connect").asText(),
                List.copyOf(exclude), q.isMissingNode() ? null : q.asBoolean(), scratch == null ? null
                : Path.of(scratch));
            if (vm == null) {
                if (!domainName.matches("[A-Za-z0-9][A-Za-z0-9._-]{0,127}")) {
                    throw c.fail(at + ".vm", "is needed: domain name '" + domainName + "' is not a valid VM name");
                }
                vm = domainName;
            }
        }
        JsonNode dn = n.get("disks");
        if (domain != null) {
            dn = new ObjectMapper().createArrayNode();
        } else if (dn == null || !dn.isArray() || dn.isEmpty()) {
            throw c.fail(at + ".disks", "is missing or empty; list the disks as {name: vda, source: NBD-URI} or "
                + "{name: vda, image: FILE.qcow2}");
        }
        List<Disk> disks = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        for (int i = 0; i < dn.size(); i++) {
            String dat = at + ".disks[" + i + "]";
            JsonNode d = dn.get(i);
            if (d == null || !d.isObject()) {
                throw c.fail(dat, "must be a mapping {name, source, bitmap} or {name, image}");
            }
            c.keys(d, dat, Set.of("name", "source", "bitmap", "node", "device", "image"));
            String dname = c.text(d, "name", true, dat);
            if (!dname.matches(NAME)) {
                throw c.fail(dat + ".name", "'" + dname + "' must be 1-64 letters, digits, '.', '_' or '-'");
            }
            if (!seen.add(dname)) {
                throw c.fail(dat + ".name", "disk '" + dname + "' is listed twice");
            }
            String bm = d.has("bitmap") ? c.text(d, "bitmap", false, dat) : bitmap;
            if (live) {
                String node = c.text(d, "node", false, dat);
                String device = c.text(d, "device", false, dat);
                if (d.has("source") || d.has("image") || (node == null) == (device == null)) {
                    throw c.fail(dat, "of a live job (qmp:) needs node: NODE or device: DEV, and no source or image "
                        + "(jbackup makes the export itself)");
                }
                disks.add(new Disk(dname, null, null, node, device, null));
                continue;
            }
            if (d.has("node") || d.has("device")) {
                throw c.fail(dat, "has node/device, which need qmp: {socket: ...} on the job");
            }
            if (d.has("image")) {
                if (d.has("source")) {
                    throw c.fail(dat, "has both source and image: give source: NBD-URI for an export served by "
                        + "something else, or image: FILE for an offline qcow2 image that jbackup serves itself");
                }
                disks.add(new Disk(dname, null, bm, null, null, base.resolve(c.text(d, "image", true, dat)).normalize()));
                continue;
            }
            if (!d.has("source")) {
                throw c.fail(dat, "needs source: NBD-URI (an export served by something else) or image: FILE (an "
                    + "offline qcow2 image that jbackup serves itself)");
            }
            String src = c.text(d, "source", true, dat);
            try {
                io.jbackup.nbd.client.NbdUri.parse(src);
            } catch (IllegalArgumentException e) {
                throw c.fail(dat + ".source", e.getMessage());
            }
            if (mode == BackupMode.INCREMENTAL && bm == null) {
                throw c.fail(dat, "mode incremental needs a bitmap (on the job or the disk)");
            }
            disks.add(new Disk(dname, src, bm, null, null, null));
        }
        RetentionPolicy retention = null;
        JsonNode rn = n.get("retention");
        if (rn != null) {
            String rat = at + ".retention";
            if (!rn.isObject()) {
                throw c.fail(rat, "must be a mapping such as {keepLast: 3, keepDaily: 7}");
            }
            c.keys(rn, rat, Set.of("keepLast", "keepHourly", "keepDaily", "keepWeekly", "keepMonthly", "keepYearly",
                "keepWithin"));
            try {
                String within = c.text(rn, "keepWithin", false, rat);
                retention = new RetentionPolicy(c.count(rn, "keepLast", rat), c.count(rn, "keepHourly", rat),
                    c.count(rn, "keepDaily", rat), c.count(rn, "keepWeekly", rat), c.count(rn, "keepMonthly", rat),
                    c.count(rn, "keepYearly", rat), within == null ? null : RetentionPolicy.Span.parse(within), zone);
            } catch (IllegalArgumentException e) {
                throw c.fail(rat, e.getMessage().replace("--keep-", "keep-"));
            }
        }
        Map<String, String> tls = c.stringMap(n, "tls", at);
        c.keys(n.path("tls"), at + ".tls", Set.of("creds", "pskFile", "username", "hostname", "verify"));
        return new Job(name, vm, schedule, mode, List.copyOf(disks), c.stringMap(n, "labels", at), connections, tls,
            qmp, retention, timeout, retries, domain);
    }

    /**
     * {@code KEY: {schedule, VALUEKEY[, EXTRA]}}: a cron schedule, a number, and for gc its {@code grace} (a duration,
     * {@code 48h}, {@code 2d}: in an object store, what is younger is never deleted; null when not given).
     */
    private static Task task(Ctx c, JsonNode root, String key, String valueKey, double dflt, double min, double max,
                             String... extra) {
        JsonNode n = root.get(key);
        if (n == null) {
            return null;
        }
        if (!n.isObject()) {
            throw c.fail(key, "must be a mapping {schedule, " + valueKey + "}");
        }
        Set<String> allowed = new java.util.HashSet<>(Set.of("schedule", valueKey));
        allowed.addAll(List.of(extra));
        c.keys(n, key, allowed);
        CronSchedule s;
        try {
            s = CronSchedule.parse(c.text(n, "schedule", true, key));
        } catch (IllegalArgumentException e) {
            throw c.fail(key + ".schedule", e.getMessage());
        }
        double v = dflt;
        if (n.has(valueKey)) {
            JsonNode x = n.get(valueKey);
            if (!x.isNumber() || x.asDouble() < min || x.asDouble() > max) {
                throw c.fail(key + "." + valueKey, "'" + x.asText() + "' (expected a number from " + min + " to "
                    + max + ")");
            }
            v = x.asDouble();
        }
        Duration grace = null;
        if (n.has("grace")) {
            grace = io.jbackup.text.DurationText.parse(n.get("grace").asText()).orElseThrow(() -> c.fail(key
                + ".grace", "'" + n.get("grace").asText() + "' (expected a duration: 36h, 2d, or seconds)"));
        }
        return new Task(s, v, grace);
    }

    /** Where in which file: builds the messages. */
    private record Ctx(Path file) {
        IllegalArgumentException fail(String at, String what) {
            return new UsageException("job file " + file + (at.isEmpty() ? "" : ": " + at) + " " + what);
        }

        void keys(JsonNode n, String at, Set<String> allowed) {
            if (n == null || !n.isObject()) {
                return;
            }
            for (Iterator<String> it = n.fieldNames(); it.hasNext(); ) {
                String k = it.next();
                if (!allowed.contains(k)) {
                    throw fail(at.isEmpty() ? k : at + "." + k, "is not a known key (known: "
                        + String.join(", ", new java.util.TreeSet<>(allowed)) + ")");
                }
            }
        }

        String text(JsonNode n, String key, boolean required) {
            return text(n, key, required, "");
        }

        String text(JsonNode n, String key, boolean required, String at) {
            JsonNode v = n.get(key);
            String where = at.isEmpty() ? key : at + "." + key;
            if (v == null || v.isNull()) {
                if (required) {
                    throw fail(where, "is missing");
                }
                return null;
            }
            if (!v.isValueNode() || v.asText().isBlank()) {
                throw fail(where, "must be a non-empty text");
            }
            return v.asText();
        }

        Path path(JsonNode n, String key, Path base, boolean required) {
            String s = text(n, key, required);
            return s == null ? null : base.resolve(s).normalize();
        }

        int integer(JsonNode n, String key, String at, int min, int max) {
            JsonNode v = n.get(key);
            if (!v.canConvertToInt() || !v.isIntegralNumber() || v.asInt() < min || v.asInt() > max) {
                throw fail(at + "." + key, "'" + v.asText() + "' (expected a whole number from " + min + " to " + max
                    + ")");
            }
            return v.asInt();
        }

        int count(JsonNode n, String key, String at) {
            return n.has(key) ? integer(n, key, at, 0, RetentionPolicy.MAX_COUNT) : 0;
        }

        Map<String, String> stringMap(JsonNode n, String key, String at) {
            JsonNode v = n.get(key);
            if (v == null || v.isNull()) {
                return Map.of();
            }
            if (!v.isObject()) {
                throw fail(at + "." + key, "must be a mapping of names to values");
            }
            Map<String, String> m = new LinkedHashMap<>();
            v.fields().forEachRemaining(e -> {
                if (!e.getValue().isValueNode()) {
                    throw fail(at + "." + key + "." + e.getKey(), "must be a plain value");
                }
                m.put(e.getKey(), e.getValue().asText());
            });
            return m;
        }
    }
}
