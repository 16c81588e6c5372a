package io.jbackup.objectstore;

/** There is no object under the key that was read. */
public class ObjectNotFoundException extends ObjectStoreException {
    private static final long serialVersionUID = 1L;

    private final String key;

    public ObjectNotFoundException(String store, String key) {
        super("no object " + key + " in " + store);
        this.key = key;
    }

    /** The key that was not found. */
    public String key() {
        return key;
    }
}
