package dev.lockstep.commit;

import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;

/**
 * One transaction's journal record as the principal's {@code lockstep.collect} returns it and the
 * mirror's {@code lockstep.apply} takes it: the same record is stored on both nodes.
 *
 * @param epoch       epoch the principal committed in
 * @param seq         position within the epoch
 * @param gid         global transaction id
 * @param origin      name of the principal
 * @param committedAt commit time on the principal, ISO 8601
 * @param changes     the change set, JSON text
 */
record JournalRecord(long epoch, long seq, String gid, String origin, String committedAt, String changes) {

    /** Reads the row collect() returned; null when the transaction changed nothing mirrored. */
    static JournalRecord read(ResultSet rs, String gid) throws SQLException {
        rs.next();
        long epoch = rs.getLong(1);
        if (rs.wasNull()) {
            return null;
        }
        return new JournalRecord(epoch, rs.getLong(2), gid, rs.getString(3), rs.getString(4), rs.getString(5));
    }

    /** Binds the record to the six parameters of lockstep.apply. */
    void bind(PreparedStatement ps) throws SQLException {
        ps.setLong(1, epoch);
        ps.setLong(2, seq);
        ps.setString(3, gid);
        ps.setString(4, origin);
        ps.setString(5, committedAt);
        ps.setString(6, changes);
    }
}
