package io.jbackup.schedule;

import io.jbackup.engine.BackupMode;
import io.jbackup.engine.EngineOptions;
import io.jbackup.store.OpenOptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZonedDateTime;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Job files are validated up front; due times follow cron in the file's zone and the state file. */
class JobFileTest {
    @TempDir
    Path tmp;

    static final String GOOD = """
        # nightly backups
        repository: repo
        timezone: Europe/Berlin
        jobs:
          - name: web1
            vm: web1
            schedule: "30 2 * * *"
            bitmap: jbackup
            labels: {env: prod}
            disks:
              - {name: vda, source: "nbd+unix:///vda?socket=/run/web1.sock"}
              - {name: vdb, source: "nbd://127.0.0.1:10809/vdb", bitmap: other}
            retention: {keepLast: 3, keepDaily: 7, keepWithin: 2d}
          - name: db
            schedule: "0 */4 * * *"
            mode: full
            timeout: 30
            retries: 2
            disks: [{name: db0, source: "nbd://db-host/db0"}]
          - name: vm2
            vm: vm2
            schedule: "0 3 * * *"
            qmp: {socket: /run/vm2.qmp, qga: /run/vm2-qga.sock, timeout: 20}
            disks: [{name: vda, node: vda}, {name: vdb, device: virtio-disk1}]
        verify: {schedule: "0 5 * * 0", sample: 10}
        gc: {schedule: "0 6 * * 0"}
        """;

    private Path write(String name, String text) throws Exception {
        Path f = tmp.resolve(name);
        Files.writeString(f, text);
        return f;
    }

    @Test
    void readsAFullJobFile() throws Exception {
        JobFile jf = JobFile.read(write("nightly.yaml", GOOD));
        assertEquals(new io.jbackup.store.RepositoryLocation.Local(tmp.resolve("repo")), jf.repository(), "relative to the job file");
        assertEquals(tmp.resolve("repo").resolve("schedule").resolve("nightly.json"), jf.stateFile());
        assertEquals(ZoneId.of("Europe/Berlin"), jf.zone());
        JobFile.Job web = jf.jobs().get(0);
        assertEquals(BackupMode.AUTO, web.mode());
        assertEquals("jbackup", web.disks().get(0).bitmap(), "job default bitmap");
        assertEquals("other", web.disks().get(1).bitmap());
        assertEquals(Map.of(), web.qmp());
        JobFile.Job vm2 = jf.jobs().get(2);
        assertEquals("/run/vm2.qmp", vm2.qmp().get("socket"));
        assertEquals("vda", vm2.disks().get(0).node());
        assertEquals("virtio-disk1", vm2.disks().get(1).device());
        assertEquals(3, web.retention().keepLast());
        assertEquals(ZoneId.of("Europe/Berlin"), web.retention().zone());
        assertNull(jf.jobs().get(1).vm());
        assertEquals(120, web.timeoutSeconds(), "default: as jbackup full --timeout");
        assertEquals(5, web.retries());
        assertEquals(30, jf.jobs().get(1).timeoutSeconds());
        assertEquals(2, jf.jobs().get(1).retries());
        assertNull(jf.jobs().get(1).retention());
        assertEquals(10.0, jf.verify().value());
        assertEquals(50.0, jf.gc().value(), "default repack threshold");
        assertNull(jf.gc().grace(), "gc's own default grace");
        JobFile graced = JobFile.read(write("grace.yaml", "repository: repo\njobs: [{name: a, schedule: '0 1 * * *', "
            + "disks: [{name: vda, image: vda.qcow2}]}]\ngc: {schedule: '0 6 * * 0', grace: 3d}"));
        assertEquals(java.time.Duration.ofDays(3), graced.gc().grace(), "a backup that runs longer than a day");
        // an offline image: relative to the job file; its bitmap (the job's default here) only starts a chain
        JobFile img = JobFile.read(write("img.yaml", "repository: repo\njobs: [{name: a, schedule: '0 1 * * *', "
            + "mode: incremental, disks: [{name: vda, image: images/vda.qcow2}, {name: vdb, image: /i/vdb.qcow2, "
            + "bitmap: b0}]}]"));
        assertEquals(tmp.resolve("images/vda.qcow2"), img.jobs().get(0).disks().get(0).image());
        assertNull(img.jobs().get(0).disks().get(0).source());
        assertNull(img.jobs().get(0).disks().get(0).bitmap(), "mode incremental needs no bitmap for an image");
        assertEquals(Path.of("/i/vdb.qcow2"), img.jobs().get(0).disks().get(1).image());
        assertEquals("b0", img.jobs().get(0).disks().get(1).bitmap());
        // JSON is accepted too
        JobFile json = JobFile.read(write("j.json", "{\"repository\": \"/r\", \"jobs\": [{\"name\": \"a\", "
            + "\"schedule\": \"0 1 * * *\", \"disks\": [{\"name\": \"d\", \"source\": \"nbd://h/e\"}]}]}"));
        assertEquals(new io.jbackup.store.RepositoryLocation.Local(Path.of("/r")), json.repository());
    }

    @Test
    void anS3RepositoryTakesItsOptionsAndKeepsTheStateInTheCache() throws Exception {
        Path f = write("nightly.yaml", GOOD.replace("repository: repo", String.join("\n",
            "repository: s3://backups/prod/vms", "s3Endpoint: http://127.0.0.1:9000", "s3Region: eu-central-1",
            "s3PathStyle: false", "cacheDir: cache")));
        JobFile jf = JobFile.read(f);
        io.jbackup.store.RepositoryLocation.Remote r = (io.jbackup.store.RepositoryLocation.Remote) jf.repository();
        assertEquals("s3://backups/prod/vms", r.url());
        assertEquals(tmp.resolve("cache"), r.cacheRoot(), "relative to the job file");
        assertEquals(tmp.resolve("cache/schedule/s3/backups/prod/vms/nightly.json"), jf.stateFile(),
            "never inside the bucket's prefix");
        // a directory repository keeps its state inside it
        assertEquals(tmp.resolve("repo/schedule/nightly.json"),
            JobFile.read(write("nightly.yaml", GOOD)).stateFile());
    }

    @Test
    void theShippedExampleIsValid() throws Exception {
        JobFile jf = JobFile.read(Path.of("examples/jobs.yaml"));
        assertEquals(5, jf.jobs().size());
        JobFile.Job files1 = jf.jobs().stream().filter(j -> j.name().equals("files1")).findFirst().orElseThrow();
        assertEquals(Path.of("/var/lib/libvirt/images/files1-data.qcow2"), files1.disks().get(1).image());
        assertTrue(jf.jobs().stream().anyMatch(j -> !j.qmp().isEmpty()), "the example shows a live job");
        JobFile.Job db1 = jf.jobs().stream().filter(j -> j.domain() != null).findFirst().orElseThrow();
        assertEquals("db1", db1.domain().name());
        assertEquals("db1", db1.vm(), "vm defaults to the domain's name");
        assertEquals(List.of("vdc"), db1.domain().exclude());
        assertEquals("qemu:///system", db1.domain().connect());
        assertTrue(db1.disks().isEmpty());
        assertEquals(10.0, jf.verify().value());
    }

    @Test
    void errorsNameTheFileAndTheField() throws Exception {
        record Case(String yaml, String expected) {
        }
        List<Case> cases = List.of(
            new Case("repository: r\njobs: [{name: a, schedule: '0 1 * * *', domain: d, disks: [{name: d, source: "
                + "'nbd://h/e'}]}]", "domain: backs up every disk of the domain: drop disks"),
            new Case("repository: r\njobs: [{name: a, schedule: '0 1 * * *', libvirt: {connect: 'qemu:///system'}, "
                + "disks: [{name: d, source: 'nbd://h/e'}]}]", "jobs[0].libvirt needs domain: NAME"),
            new Case("repository: r\njobs: [{name: a, schedule: '0 1 * * *', domain: d, libvirt: {quiesce: maybe}}]",
                "jobs[0].libvirt.quiesce must be true or false"),
            new Case("repository: r\njobs: [{name: a, schedule: '0 1 * * *', domain: d, libvirt: {exclude: [vdb]}}]",
                "exclude is not a known key"),
            new Case("jobs: []", "repository is missing"),
            new Case("repository: r\njobs: []", "jobs is missing or empty"),
            new Case("repository: r\nrepositry: x\njobs: []", "repositry is not a known key"),
            new Case("repository: r\njobs: [{name: a, schedule: '61 * * * *', disks: [{name: d, source: 'nbd://h/e'}]}]",
                "jobs[0].schedule"),
            new Case("repository: r\njobs: [{name: a, schedule: '* * *', disks: [{name: d, source: 'nbd://h/e'}]}]",
                "has 3 fields"),
            new Case("repository: r\njobs: [{name: a, schedule: '0 1 * * *', mode: sometimes, disks: [{name: d, "
                + "source: 'nbd://h/e'}]}]", "jobs[0].mode 'sometimes'"),
            new Case("repository: r\njobs: [{name: a, schedule: '0 1 * * *', mode: incremental, disks: [{name: d, "
                + "source: 'nbd://h/e'}]}]", "needs a bitmap"),
            new Case("repository: r\njobs: [{name: a, schedule: '0 1 * * *', disks: [{name: d, source: 'http://x'}]}]",
                "jobs[0].disks[0].source"),
            new Case("repository: r\njobs: [{name: a, schedule: '0 1 * * *', disks: [{name: d, source: 'nbd://h/e'}]},"
                + "{name: a, schedule: '0 2 * * *', disks: [{name: e, source: 'nbd://h/e'}]}]", "used by two jobs"),
            new Case("repository: r\njobs: [{name: a, schedule: '0 1 * * *', disks: [{name: d, source: 'nbd://h/e'}]},"
                + "{name: b, schedule: '0 2 * * *', disks: [{name: d, source: 'nbd://h/e'}]}]", "backed up by two jobs"),
            new Case("repository: r\njobs: [{name: a, schedule: '0 1 * * *', retention: {}, disks: [{name: d, "
                + "source: 'nbd://h/e'}]}]", "every backup would be removed"),
            new Case("repository: r\njobs: [{name: a, schedule: '0 1 * * *', retention: {keepDayly: 3}, disks: "
                + "[{name: d, source: 'nbd://h/e'}]}]", "retention.keepDayly is not a known key"),
            new Case("repository: r\ntimezone: Mars/Olympus\njobs: []", "timezone 'Mars/Olympus'"),
            new Case("repository: r\nverify: {schedule: '0 5 * * *', sample: 0}\njobs: [{name: a, schedule: '0 1 * * *',"
                + " disks: [{name: d, source: 'nbd://h/e'}]}]", "verify.sample"),
            new Case("repository: r\njobs: [{name: a, schedule: '0 1 * * *', qmp: {socket: /q}, disks: [{name: d, "
                + "source: 'nbd://h/e'}]}]", "needs node: NODE or device: DEV"),
            new Case("repository: r\njobs: [{name: a, schedule: '0 1 * * *', qmp: {qga: /g}, disks: [{name: d, "
                + "node: n}]}]", "qmp needs socket"),
            new Case("repository: r\njobs: [{name: a, schedule: '0 1 * * *', disks: [{name: d, node: n}]}]",
                "need qmp: {socket"),
            new Case("repository: r\njobs: [{name: a, schedule: '0 1 * * *', qmp: {socket: /q, timeout: soon}, disks: "
                + "[{name: d, node: n}]}]", "qmp.timeout 'soon'"),
            new Case("repository: r\njobs: [{name: a, schedule: '0 1 * * *', timeout: 0, disks: [{name: d, "
                + "source: 'nbd://h/e'}]}]", "jobs[0].timeout"),
            new Case("repository: r\njobs: [{name: a, schedule: '0 1 * * *', retries: 101, disks: [{name: d, "
                + "source: 'nbd://h/e'}]}]", "jobs[0].retries"),
            new Case("repository: r\ncacheDir: c\njobs: []", "cacheDir applies to s3:// repositories only"),
            new Case("repository: ftp://h/x\njobs: []", "only directories and s3://BUCKET/PREFIX"),
            new Case("repository: s3://B/x\njobs: []", "'B' is not an S3 bucket name"),
            new Case("repository: s3:/fleet/x\njobs: []", "an S3 repository is written s3://BUCKET/PREFIX"),
            new Case("repository: r\njobs: [{name: a, schedule: '0 1 * * *', disks: [{name: v, image: v.qcow2}]}]\n"
                + "gc: {schedule: '0 6 * * 0', grace: soon}", "gc.grace 'soon' (expected a duration"),
            new Case("repository: r\njobs: [{name: a, schedule: '0 1 * * *', disks: [{name: v, image: v.qcow2}]}]\n"
                + "verify: {schedule: '0 6 * * 0', grace: 1h}", "verify"),
            new Case("repository: S3://fleet/x\njobs: []", "an S3 repository is written s3://BUCKET/PREFIX"),
            new Case("repository: s3://bkt/x\ns3PathStyle: maybe\njobs: []", "s3PathStyle 'maybe'"),
            new Case("repository: s3://bkt/x\ns3Endpoint: nope\njobs: [{name: a, schedule: '0 1 * * *', disks: "
                + "[{name: d, source: 'nbd://h/e'}]}]", "s3Endpoint nope is not an http"),
            new Case("repository: r\njobs: [{name: a, schedule: '0 1 * * *', disks: [{name: d, source: 'nbd://h/e', "
                + "image: d.qcow2}]}]", "jobs[0].disks[0] has both source and image"),
            new Case("repository: r\njobs: [{name: a, schedule: '0 1 * * *', disks: [{name: d, bitmap: b}]}]",
                "jobs[0].disks[0] needs source: NBD-URI (an export served by something else) or image: FILE"),
            new Case("repository: r\njobs: [{name: a, schedule: '0 1 * * *', disks: [{name: d, image: ''}]}]",
                "jobs[0].disks[0].image must be a non-empty text"),
            new Case("repository: r\njobs: [{name: a, schedule: '0 1 * * *', qmp: {socket: /q}, disks: [{name: d, "
                + "node: n, image: d.qcow2}]}]", "needs node: NODE or device: DEV, and no source or image"),
            new Case("repository: [unclosed", "not valid YAML"));
        int i = 0;
        for (Case c : cases) {
            Path f = write("bad" + (i++) + ".yaml", c.yaml());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> JobFile.read(f), c.yaml());
            assertTrue(e.getMessage().contains(f.toString()) && e.getMessage().contains(c.expected()),
                c.expected() + " <- " + e.getMessage());
        }
    }

    @Test
    void cronFiresInTheFileZoneAndDueFollowsTheState() throws Exception {
        CronSchedule s = CronSchedule.parse("30 2 * * *");
        ZonedDateTime now = ZonedDateTime.parse("2026-11-24T10:00:00+01:00[Europe/Berlin]");
        assertEquals(ZonedDateTime.parse("2026-11-24T02:30:00+01:00[Europe/Berlin]"), s.lastFire(now).orElseThrow());
        assertEquals(ZonedDateTime.parse("2026-11-25T02:30:00+01:00[Europe/Berlin]"), s.nextFire(now).orElseThrow());
        ZonedDateTime exactly = ZonedDateTime.parse("2026-11-24T02:30:00+01:00[Europe/Berlin]");
        assertEquals(exactly, s.lastFire(exactly).orElseThrow(), "a fire at now is past");
        CronSchedule secs = CronSchedule.parse("*/10 * * * * *");
        assertEquals(ZonedDateTime.parse("2026-11-24T10:00:10+01:00[Europe/Berlin]"), secs.nextFire(now).orElseThrow());

        Path f = write("j.yaml", GOOD);
        JobFile jf = JobFile.read(f);
        Scheduler sch = new Scheduler(jf, OpenOptions.defaults(), EngineOptions.defaults());
        Instant t = Instant.parse("2026-11-24T09:00:00Z");
        List<Scheduler.Planned> plan = sch.plan(t);
        assertEquals(List.of("job:web1", "job:db", "job:vm2", "verify", "gc"),
            plan.stream().map(Scheduler.Planned::task).toList());
        assertTrue(plan.stream().allMatch(Scheduler.Planned::due), "never run: everything is due");
        ScheduleState.update(jf.stateFile(), "job:web1", new ScheduleState.Entry(t, "ok", "fine", "r1"));
        ScheduleState.update(jf.stateFile(), "job:db", new ScheduleState.Entry(t, "ok", "fine", "r1"));
        plan = sch.plan(t.plusSeconds(60));
        assertFalse(plan.get(0).due());
        assertFalse(plan.get(1).due());
        // db fires every 4 hours (Berlin 12:00 = 11:00Z), web1 at 02:30 Berlin
        assertTrue(sch.plan(Instant.parse("2026-11-24T11:00:00Z")).get(1).due());
        assertFalse(sch.plan(Instant.parse("2026-11-25T01:29:00Z")).get(0).due());
        assertTrue(sch.plan(Instant.parse("2026-11-25T01:30:00Z")).get(0).due());
        assertEquals(ZonedDateTime.parse("2026-11-24T12:00:00+01:00[Europe/Berlin]"),
            sch.nextFire(t.plusSeconds(60)).orElseThrow());
        assertEquals("fine", ScheduleState.read(jf.stateFile()).get("job:web1").message());
    }
}
