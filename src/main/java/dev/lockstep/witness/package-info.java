/**
 * The witness store: the partnership record, its history and the coordinators that share it, kept
 * in a third PostgreSQL database. Every change is a compare-and-set on epoch and state. Depends on
 * {@code dev.lockstep.core} only.
 */
package dev.lockstep.witness;
