/**
 * Probes and the failure detector: each node (partner or witness) is probed about once a second
 * over a dedicated connection, each probe bounded by a Resilience4j time limiter and gated by a
 * circuit breaker per node. What the probes saw becomes a {@link dev.lockstep.core.PartnerHealth}
 * through the pure rule in {@code dev.lockstep.core}.
 */
package dev.lockstep.health;
