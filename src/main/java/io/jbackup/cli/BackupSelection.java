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
        // a whole set: resolve the reference against any disk of the VM, then take every disk with the same set label
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
        boolean byTime = backup.equals("latest") || backup.startsWith("@");
        // an id (or prefix) is looked up among every disk of the VM: it may be of any disk of the set
        BackupInfo anchor = r.resolve(vm, byTime ? ofVm.get(0).disk() : null, backup);
        if (byTime) {
            ofVm.sort(Comparator.comparing(BackupInfo::created));
            BackupInfo newest = null;
            for (BackupInfo b : ofVm) {
                if (backup.equals("latest") || !b.created().isAfter(anchor.created())) {
                    newest = b;
                }
            }
            anchor = newest == null ? anchor : newest;
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
