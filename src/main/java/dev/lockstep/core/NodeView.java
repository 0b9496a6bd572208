package dev.lockstep.core;

/**
 * What one node's schema says about the partnership.
 *
 * @param node        node name stored on the node
 * @param partnership partnership name stored on the node
 * @param role        its role
 * @param epoch       its epoch
 */
public record NodeView(String node, String partnership, NodeRole role, long epoch) {
}
