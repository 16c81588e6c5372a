/**
 * The exception types every layer throws for a mistake in what the user asked for, so that the command line maps
 * them to exit code 2 without matching on messages or on the package an exception comes from. This package
 * depends on nothing, so store, engine, schedule and cli can all use it without a cycle.
 */
package io.jbackup.error;
