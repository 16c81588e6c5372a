package io.jbackup.cli;

import io.jbackup.error.NotFoundException;
import io.jbackup.model.BackupInfo;
import io.jbackup.store.Repository;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/** Which backups {@code --vm}/{@code --disk}/{@code --backup} name: shared by {@code restore} and {@code mount}. */
final class BackupSelection {
    private BackupSelection() {
    }

    /**
     * The backups {@code --vm}, {@code --disk} and {@code --backup} name: one backup with {@code --disk} (of
     * {@code --vm} when given), else every disk of the VM's backup set that {@code backup} resolves to (the
     * backups sharing its {@code set} label), sorted by disk.
     */
    static List<BackupInfo> select(Repository r, String vm, String disk, String backup) throws IOException {
        if (disk != null) {
            return List.of(r.resolve(vm, disk, backup));
        }
        // a whole set: resolve the reference against every disk of the VM, then take every disk with the same set label
        List<BackupInfo> ofVm = new ArrayList<>();
        for (BackupInfo b : r.listBackups()) {
            if (vm.equals(b.vm()) && "complete".equals(b.state())) {
                ofVm.add(b);
            }
        }
        if (ofVm.isEmpty()) {
            throw new NotFoundException("no complete backups of VM " + vm + " in the repository; "
                + "'jbackup list' shows what there is");
        }
        BackupInfo anchor;
        if (backup.equals("latest") || backup.startsWith("@")) {
            // the newest backup at or before the time among every disk of the VM: a disk left out of the newer
            // sets must not pull the choice back to an older set
            anchor = null;
            NotFoundException none = null;
            for (String d : ofVm.stream().map(BackupInfo::disk).distinct().toList()) {
                BackupInfo b;
                try {
                    b = r.resolve(vm, d, backup);
                } catch (NotFoundException e) {
                    none = none == null ? e : none;
                    continue;
                }
                if (anchor == null || b.created().isAfter(anchor.created())) {
                    anchor = b;
                }
            }
            if (anchor == null) {
                throw none;
            }
        } else {
            // an id (or prefix) is looked up among every disk of the VM: it may be of any disk of the set
            anchor = r.resolve(vm, null, backup);
        }
        String set = anchor.labels().get("set");
        List<BackupInfo> out = new ArrayList<>();
        for (BackupInfo b : ofVm) {
            if (set == null ? b.id().equals(anchor.id()) : set.equals(b.labels().get("set"))) {
                out.add(b);
            }
        }
        out.sort(Comparator.comparing(BackupInfo::disk));
        return out;
    }
}
