package io.jbackup.objectstore;

import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The contract on a directory, and what is particular to it. */
class LocalObjectStoreTest extends ObjectStoreContract {

    Path root() {
        return tmp.resolve("store");
    }

    @Override
    ObjectStore open(int pageSize) throws Exception {
        return LocalObjectStore.open(Files.createDirectories(root()), pageSize);
    }

    @Override
    int largeSize() {
        return 12 << 20;
    }

    @Test
    void keysAreFilesUnderTheDirectory() throws Exception {
        store.put("packs/ab/x.pack", bytes("p"));
        assertArrayEquals(bytes("p"), Files.readAllBytes(root().resolve("packs/ab/x.pack")));
    }

    @Test
    void temporaryFilesAreNeverListedNorLeftBehind() throws Exception {
        store.put("k/a", bytes("a"));
        Files.writeString(root().resolve("k/.a.tmp-0123"), "half-written by a crashed process");
        assertEquals(List.of("k/a"), keys(store.listAll("")));
        store.create("k/b", ObjectSource.of(bytes("b")));
        store.create("k/b", ObjectSource.of(bytes("b2")));
        try (Stream<Path> s = Files.list(root().resolve("k"))) {
            assertEquals(List.of(".a.tmp-0123", "a", "b"), s.map(p -> p.getFileName().toString()).sorted().toList());
        }
    }

    @Test
    void aMissingDirectoryIsATypedError() {
        assertThrows(StoreNotFoundException.class, () -> LocalObjectStore.open(tmp.resolve("nowhere")));
    }

    @Test
    void anObjectCannotBeAPrefixOfAnother() throws Exception {
        store.put("obj", bytes("x"));
        ObjectStoreException e = assertThrows(ObjectStoreException.class, () -> store.put("obj/under", bytes("y")));
        assertTrue(e.getMessage().contains("is an object, not a prefix"), e.getMessage());
    }
}
