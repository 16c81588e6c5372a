package io.jbackup.catalog;

import io.jbackup.model.RepositoryException;

import java.nio.file.Path;

/** The {@link Catalog} contract, run against {@link SqliteCatalog}. */
class SqliteCatalogContractTest extends CatalogContract {
    @Override
    protected Catalog create(Path dir, String repositoryId) throws RepositoryException {
        return SqliteCatalog.open(dir.resolve(SqliteCatalog.FILE_NAME), repositoryId, true);
    }
}
