/**
 * Pure decisions of Lockstep: the quorum rules and role changes, the rules for in-doubt
 * transactions, partnership consistency at start-up, global transaction ids and the commit path
 * a transaction takes. Inputs in, decisions out; this package depends on the JDK alone (no JDBC,
 * threads, clocks, I/O or logging), so every rule is tested exhaustively in milliseconds.
 */
package dev.lockstep.core;
