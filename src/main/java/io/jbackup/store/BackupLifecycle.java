package io.jbackup.store;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jbackup.catalog.Catalog;
import io.jbackup.error.NotFoundException;
import io.jbackup.error.UsageException;
import io.jbackup.model.AttachmentInfo;
import io.jbackup.model.BackupInfo;
import io.jbackup.model.BackupStats;
import io.jbackup.model.RepositoryException;
import io.jbackup.model.RepositoryFullException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.OffsetDateTime;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.time.temporal.ChronoUnit;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.stream.Collectors;

/**
 * The lifecycle of backups: beginning one (the spec checked first), opening one for reading, finding them (by id,
 * prefix, {@code latest} or time), and marking one bad. Writing is {@link PackedBackupWriter}'s; reading
 * {@link PackedBackupReader}'s.
 */
final class BackupLifecycle {
    private static final Logger LOG = LoggerFactory.getLogger(BackupLifecycle.class);
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final DateTimeFormatter ID_TIME = DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss").withZone(ZoneOffset.UTC);
    private static final int MAX_NAME = 255;
    private static final int MAX_NOTE = 64 * 1024;
    private static final int MAX_LABELS = 256;

    private final RepositoryContext ctx;
    private final ChunkReader reader;
    private final Catalog catalog;
    private final Storage storage;
    private final RepositoryConfig config;

    BackupLifecycle(RepositoryContext ctx, ChunkReader reader) {
        this.ctx = ctx;
        this.reader = reader;
        this.catalog = ctx.catalog();
        this.storage = ctx.storage();
        this.config = ctx.config();
    }

    /**
     * Starts a backup. The spec is checked first: names, sizes, type; for an incremental, that the parent exists,
     * is complete and not bad, and has the same disk, chunk size and image size (a resized disk needs a full backup).
     */
    public BackupWriter beginBackup(BackupSpec spec) throws IOException {
        ctx.checkOpen();
        ctx.requireKey();
        int chunkSize = spec.chunkSize() == 0 ? config.defaultChunkSize() : spec.chunkSize();
        validate(spec, chunkSize);
        IndexReader parent = null;
        if (BackupSpec.INCREMENTAL.equals(spec.type())) {
            BackupInfo p = catalog.backup(spec.parentId()).orElseThrow(() -> new RepositoryException("parent backup "
                + spec.parentId() + " does not exist; take a full backup"));
            String disk = spec.vm() == null ? spec.disk() : spec.vm() + "/" + spec.disk();
            if (!p.isComplete()) {
                throw new RepositoryException("parent backup " + p.id() + " is " + p.state()
                    + (BackupInfo.BAD.equals(p.state()) ? " (" + catalog.stateReason(p.id()) + ")" : "")
                    + "; take a full backup of " + disk);
            }
            if (!p.disk().equals(spec.disk()) || !java.util.Objects.equals(p.vm(), spec.vm())) {
                throw new RepositoryException("parent backup " + p.id() + " is of " + p.diskLabel() + ", not " + disk
                    + "; choose a backup of " + disk + " as parent, or take a full backup");
            }
            if (p.chunkSize() != chunkSize) {
                throw new RepositoryException("parent backup " + p.id() + " has chunk size " + p.chunkSize()
                    + ", not " + chunkSize + "; use the parent's chunk size or take a full backup");
            }
            if (p.imageSize() != spec.imageSize()) {
                throw new RepositoryException("disk " + disk + " changed size from " + p.imageSize() + " to "
                    + spec.imageSize() + " bytes since parent backup " + p.id() + "; take a full backup");
            }
            parent = IndexReader.open(storage.indexFile(p.id()), ctx::metaMac, ctx.encrypted());
        }
        try {
            String uuid = UUID.randomUUID().toString();
            Instant created = Instant.now().truncatedTo(ChronoUnit.MILLIS);
            for (int attempt = 0; ; attempt++) {
                String id = newBackupId(created);
                BackupInfo info = new BackupInfo(id, spec.vm(), spec.disk(), spec.type(), spec.parentId(), created,
                    null, spec.imageSize(), chunkSize, BackupInfo.INCOMPLETE, spec.labels(), spec.note(),
                    spec.source(), BackupStats.EMPTY);
                try {
                    catalog.insertBackup(info, uuid, Owner.current().id());
                } catch (Catalog.DuplicateBackupIdException e) {
                    if (attempt < 8) {
                        continue;
                    }
                    throw e;
                }
                try {
                    PackedBackupWriter w = new PackedBackupWriter(ctx, info, uuid, parent);
                    ctx.addWriter(w);
                    LOG.info("backup {} of {} begun ({} chunks of {} bytes{})", id, info.diskLabel(),
                        info.chunkCount(), chunkSize, parent == null ? "" : ", parent " + spec.parentId());
                    return w;
                } catch (IOException | RuntimeException e) {
                    catalog.deleteBackup(id);
                    RepositoryFullException full = RepositoryFullException.of(ctx.dir(), e);
                    if (full != null) {
                        throw full;
                    }
                    throw e;
                }
            }
        } finally {
            if (parent != null) {
                parent.close();
            }
        }
    }

    private static void validate(BackupSpec s, int chunkSize) {
        checkName(s.disk(), "disk name", false);
        checkName(s.vm(), "vm name", true);
        if (s.imageSize() < 0) {
            throw new UsageException("image size " + s.imageSize() + " is negative");
        }
        RepositoryOptions.validateChunkSize(chunkSize, "chunk size");
        long chunks = (s.imageSize() + chunkSize - 1) / chunkSize;
        if (chunks > IndexFile.MAX_CHUNKS) {
            throw new UsageException("image size " + s.imageSize() + " needs " + chunks + " chunks of "
                + chunkSize + " bytes (at most " + IndexFile.MAX_CHUNKS + "); use a bigger chunk size");
        }
        if (BackupSpec.FULL.equals(s.type())) {
            if (s.parentId() != null) {
                throw new UsageException("a full backup has no parent (got " + s.parentId() + "); drop the "
                    + "parent, or make it an incremental backup");
            }
        } else if (BackupSpec.INCREMENTAL.equals(s.type())) {
            if (s.parentId() == null || s.parentId().isBlank()) {
                throw new UsageException("an incremental backup needs a parent backup id (usually the "
                    + "latest complete backup of the disk)");
            }
        } else {
            throw new UsageException("backup type '" + s.type() + "' is unknown (expected: full or "
                + "incremental)");
        }
        if (s.labels().size() > MAX_LABELS) {
            throw new UsageException(s.labels().size() + " labels (at most " + MAX_LABELS + ")");
        }
        for (Map.Entry<String, String> e : s.labels().entrySet()) {
            checkName(e.getKey(), "label name", false);
            if (e.getValue() == null || e.getValue().length() > 4096) {
                throw new UsageException("label " + e.getKey() + " has no value or one over 4096 characters");
            }
        }
        if (s.note() != null && s.note().length() > MAX_NOTE) {
            throw new UsageException("note is " + s.note().length() + " characters (at most " + MAX_NOTE + ")");
        }
    }

    private static void checkName(String n, String what, boolean nullable) {
        if (n == null) {
            if (nullable) {
                return;
            }
            throw new UsageException(what + " is missing");
        }
        if (n.isBlank() || n.length() > MAX_NAME || n.chars().anyMatch(c -> c < 0x20 || c == 0x7f)) {
            throw new UsageException(what + " '" + n + "' must be 1.." + MAX_NAME
                + " characters without control characters");
        }
    }

    private static String newBackupId(Instant created) {
        byte[] r = new byte[3];
        RANDOM.nextBytes(r);
        return ID_TIME.format(created) + "-" + HexFormat.of().formatHex(r);
    }

    /** Opens a complete (or bad) backup for reading; its index is verified first. */
    public BackupReader openBackup(String backupId) throws IOException {
        return openBackup(backupId, false);
    }

    /**
     * Opens a complete (or bad) backup for reading. Its index is verified first; if that fails and {@code salvage}
     * is set ({@code restore --ignore-errors}), the damaged index is read anyway with the chunk count and size the
     * catalog gives ({@link IndexReader#salvage}): every chunk is still verified against its digest, and
     * positions whose entry is damaged or lost fail one by one, naming the damaged index.
     */
    public BackupReader openBackup(String backupId, boolean salvage) throws IOException {
        ctx.checkOpen();
        ctx.requireKey();
        BackupInfo info = catalog.backup(backupId).orElseThrow(() -> new RepositoryException("no backup "
            + backupId + " in repository " + ctx.location() + "; list the backups with: jbackup list"));
        if (BackupInfo.INCOMPLETE.equals(info.state())) {
            throw new RepositoryException("backup " + backupId + " is incomplete (still being written, or interrupted "
                + "and not yet cleaned up); choose a complete backup");
        }
        Path file = storage.indexFile(backupId);
        IndexReader r;
        try {
            r = IndexReader.open(file, ctx::metaMac, ctx.encrypted());
        } catch (RepositoryException e) {
            if (!salvage || !Files.exists(file)) {
                throw e;
            }
            LOG.warn("backup {}: {}; salvaging: every chunk its entries name is still verified", backupId,
                e.getMessage());
            r = IndexReader.salvage(file, info.chunkCount(), info.chunkSize(), Json.MAPPER.createObjectNode()
                .put("id", backupId).put("imageSize", info.imageSize()));
            return new PackedBackupReader(ctx, reader, info, r, e.getMessage());
        }
        if (!backupId.equals(r.metadata().path("id").asText()) || r.chunkSize() != info.chunkSize()
            || r.metadata().path("imageSize").asLong() != info.imageSize()) {
            r.close();
            throw new RepositoryException("index " + r.file + " does not match backup " + backupId + " in the catalog; "
                + "rebuild the catalog with: jbackup repair --rebuild-catalog");
        }
        return new PackedBackupReader(ctx, reader, info, r);
    }

    /** The attachments the catalog records for a backup (no key needed). */
    public List<AttachmentInfo> attachments(String backupId) throws IOException {
        ctx.checkOpen();
        return catalog.attachments(backupId);
    }

    /** The newest complete (not bad) backup of a disk; {@code vm} is null for a standalone disk. */
    public Optional<BackupInfo> latestComplete(String vm, String disk) throws IOException {
        ctx.checkOpen();
        return catalog.latestComplete(vm, disk, null);
    }

    /** Every backup (complete, bad, and incomplete ones in progress), oldest first. */
    public List<BackupInfo> listBackups() throws IOException {
        ctx.checkOpen();
        return catalog.backups();
    }

    /** The backup with exactly this id, if any. */
    public Optional<BackupInfo> backup(String id) throws IOException {
        ctx.checkOpen();
        return catalog.backup(id);
    }

    /**
     * When {@code disk} has complete backups (at or before {@code at}) under another VM than {@code vm}, or with no
     * VM: the way to name them (a disk of a domain's or VM's set needs its {@code --vm}); otherwise empty.
     */
    private String elsewhere(String vm, String disk, Instant at) throws IOException {
        List<String> others = catalog.backups().stream()
            .filter(b -> BackupInfo.COMPLETE.equals(b.state()) && b.disk().equals(disk)
                && !java.util.Objects.equals(b.vm(), vm) && (at == null || !b.created().isAfter(at)))
            .map(b -> b.vm() == null ? "no --vm" : "--vm " + b.vm()).distinct().sorted().toList();
        return others.isEmpty() ? "" : ", but disk " + disk + " has backups with " + String.join(", ", others)
            + " (the disks of a VM's or domain's set are named by both)";
    }

    /**
     * Resolves what a user typed: a full backup id, a unique id prefix, {@code latest} (the newest complete backup
     * of the disk), or {@code @TIME} (the newest complete backup of the disk created at or before TIME: ISO-8601
     * instant {@code 2026-11-24T20:15:30Z}, offset date-time, local date-time, or a date meaning its end, both in the
     * local time zone). {@code vm}/{@code disk} narrow id prefixes and are required for {@code latest}/{@code @}.
     */
    public BackupInfo resolve(String vm, String disk, String ref) throws IOException {
        ctx.checkOpen();
        if (ref == null || ref.isBlank()) {
            throw new UsageException("empty backup reference; give a backup id (or a unique prefix), "
                + "'latest' or '@TIME'");
        }
        String what = disk == null ? null : vm == null ? disk : vm + "/" + disk;
        if (ref.equals("latest") || ref.startsWith("@")) {
            if (disk == null) {
                throw new UsageException("'" + ref + "' needs the disk it refers to: add --disk NAME (and --vm NAME "
                    + "for a disk of a VM's set)");
            }
            Instant at = ref.equals("latest") ? null : parseTime(ref.substring(1));
            Optional<BackupInfo> found = catalog.latestComplete(vm, disk, at);
            if (found.isPresent()) {
                return found.get();
            }
            // verify --repair (or mark-bad) may have taken the only candidates out of latest/@TIME: say so, and how
            // to get what is left of the newest one
            BackupInfo bad = null;
            for (BackupInfo b : catalog.backups()) {
                if (BackupInfo.BAD.equals(b.state()) && b.disk().equals(disk) && java.util.Objects.equals(b.vm(), vm)
                    && (at == null || !b.created().isAfter(at))
                    && (bad == null || b.created().isAfter(bad.created()))) {
                    bad = b;
                }
            }
            String none = "no complete backup of " + what + (at == null ? "" : " at or before " + at)
                + " in repository " + ctx.location();
            if (bad != null) {
                throw new NotFoundException(none + ": backup " + bad.id() + " is marked bad (damaged; 'jbackup show "
                    + bad.id() + "' says why), so it is not chosen by '" + ref + "'; name it to get what is left of "
                    + "it: jbackup restore --backup " + bad.id() + " --ignore-errors");
            }
            throw new NotFoundException(none + elsewhere(vm, disk, at) + "; list the backups with: jbackup list");
        }
        List<BackupInfo> all = catalog.backupsByPrefix(ref);
        List<BackupInfo> matches = all.stream()
            .filter(b -> disk == null || b.disk().equals(disk) && java.util.Objects.equals(b.vm(), vm))
            .filter(b -> disk != null || vm == null || vm.equals(b.vm()))
            .collect(Collectors.toList());
        for (BackupInfo b : matches) {
            if (b.id().equals(ref)) {
                return b;
            }
        }
        if (matches.size() == 1) {
            return matches.get(0);
        }
        if (matches.isEmpty()) {
            if (!all.isEmpty()) {
                throw new NotFoundException("backup " + all.get(0).id() + " matching '" + ref + "' is of "
                    + all.get(0).diskLabel() + ", not " + (what == null ? vm : what));
            }
            throw new NotFoundException("no backup matches '" + ref + "' in repository " + ctx.location()
                + "; list the backups with: jbackup list");
        }
        throw new UsageException("'" + ref + "' is ambiguous: it matches " + matches.size() + " backups ("
            + matches.stream().limit(5).map(BackupInfo::id).collect(Collectors.joining(", "))
            + (matches.size() > 5 ? ", ..." : "") + "); type more characters of the id");
    }

    static Instant parseTime(String s) {
        try {
            return endOfGivenPrecision(s, Instant.parse(s));
        } catch (DateTimeParseException ignored) {
            // try the other forms
        }
        try {
            return endOfGivenPrecision(s, OffsetDateTime.parse(s).toInstant());
        } catch (DateTimeParseException ignored) {
            // next
        }
        try {
            return endOfGivenPrecision(s, LocalDateTime.parse(s).atZone(ZoneId.systemDefault()).toInstant());
        } catch (DateTimeParseException ignored) {
            // next
        }
        try {
            return LocalDate.parse(s).plusDays(1).atStartOfDay(ZoneId.systemDefault()).toInstant().minusMillis(1);
        } catch (DateTimeParseException e) {
            throw new UsageException("cannot read time '" + s + "'; use ISO-8601, e.g. 2026-11-24T20:15:30Z, "
                + "2026-11-24T21:15:30 (local time) or 2026-11-24 (end of that day)");
        }
    }

    /**
     * A time typed without fractional seconds means the end of the second (or minute) it names, as a date means the
     * end of its day: {@code list} shows creation times to the second, so {@code @} + the time it shows must find
     * the backup created within that second ({@code 17:50:45} includes one created at {@code 17:50:45.250}).
     */
    private static Instant endOfGivenPrecision(String typed, Instant at) {
        int t = typed.indexOf('T');
        if (t < 0 || typed.indexOf('.', t) >= 0 || typed.indexOf(',', t) >= 0) {
            return at; // fractional seconds given: exactly that instant
        }
        String time = typed.substring(t + 1).split("[Zz+-]", 2)[0]; // HH:MM or HH:MM:SS, without the offset
        long colons = time.chars().filter(c -> c == ':').count();
        return colons >= 2 ? at.plusSeconds(1).minusNanos(1) : at.plusSeconds(60).minusNanos(1);
    }

    /**
     * Marks a backup bad: it is no longer offered as latest, as a parent, or by time. Recorded in the catalog and
     * in a marker file next to its index, so a rebuilt catalog keeps it.
     */
    public void markBad(String backupId, String reason) throws IOException {
        ctx.checkOpen();
        ctx.requireKey();
        String why = reason == null || reason.isBlank() ? "marked bad" : reason;
        if (!catalog.setState(backupId, BackupInfo.BAD, why)) {
            throw new NotFoundException("cannot mark backup " + backupId + " bad: no such complete backup");
        }
        ObjectNode n = Json.MAPPER.createObjectNode();
        n.put("reason", why);
        n.put("marked", Instant.now().toString());
        storage.write(io.jbackup.store.layout.RepositoryLayout.badMarker(backupId), Json.bytes(n));
        LOG.warn("backup {} marked bad: {}", backupId, why);
    }

    /** Why a backup was marked bad, or null. */
    public String badReason(String backupId) throws IOException {
        ctx.checkOpen();
        return catalog.stateReason(backupId);
    }
}
