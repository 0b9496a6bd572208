package dev.lockstep.jdbc;

import dev.lockstep.core.StatementKind;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.sql.CallableStatement;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.sql.Statement;

/**
 * The connection an application receives: a real connection to the principal whose commits run
 * the mirrored commit protocol. The physical connection always stays in a transaction
 * (autocommit off); the autocommit the application sees is emulated here, so that each
 * autocommitted statement is mirrored like any other transaction.
 */
public final class LockstepConnection implements InvocationHandler {

    private final Connection physical;
    private final TransactionCommitter committer;
    private final Runnable onClose;
    private Connection self;
    private boolean autoCommit = true;
    private boolean likelyWrites;
    private boolean temporaryObjects;
    private boolean closed;

    private LockstepConnection(Connection physical, TransactionCommitter committer, Runnable onClose) {
        this.physical = physical;
        this.committer = committer;
        this.onClose = onClose;
    }

    /**
     * Wraps a physical principal connection.
     *
     * @param physical  a connection to the principal with autocommit off
     * @param committer runs the commit protocol
     * @return the connection to hand to the application
     */
    public static Connection wrap(Connection physical, TransactionCommitter committer) {
        return wrap(physical, committer, () -> { });
    }

    /**
     * Wraps a physical principal connection.
     *
     * @param physical  a connection to the principal with autocommit off
     * @param committer runs the commit protocol
     * @param onClose   run once the application closed the connection and it went back to its pool
     * @return the connection to hand to the application
     */
    public static Connection wrap(Connection physical, TransactionCommitter committer, Runnable onClose) {
        LockstepConnection handler = new LockstepConnection(physical, committer, onClose);
        handler.self = (Connection) Proxy.newProxyInstance(LockstepConnection.class.getClassLoader(),
                new Class<?>[] {Connection.class}, handler);
        return handler.self;
    }

    @Override
    public Object invoke(Object proxy, Method method, Object[] args) throws Throwable {
        String name = method.getName();
        switch (name) {
            case "close": close(); return null;
            case "isClosed": return closed || physical.isClosed();
            case "getAutoCommit": ensureOpen(); return autoCommit;
            case "setAutoCommit": setAutoCommit((Boolean) args[0]); return null;
            case "commit": commit(); return null;
            case "unwrap": return unwrap((Class<?>) args[0]);
            case "isWrapperFor": return ((Class<?>) args[0]).isInstance(self) || physical.isWrapperFor((Class<?>) args[0]);
            case "toString": return "LockstepConnection[" + physical + "]";
            case "hashCode": return System.identityHashCode(proxy);
            case "equals": return proxy == args[0];
            default: break;
        }
        if (name.equals("rollback") && (args == null || args.length == 0)) {
            rollback();
            return null;
        }
        ensureOpen();
        Object result = delegate(physical, method, args);
        if (result instanceof Statement) {
            String sql = args != null && args.length > 0 && args[0] instanceof String ? (String) args[0] : null;
            return wrapStatement((Statement) result, sql);
        }
        return result;
    }

    private void ensureOpen() throws SQLException {
        if (closed) {
            throw SqlStates.error("08003", "lockstep: the connection is closed", null);
        }
    }

    private Object unwrap(Class<?> iface) throws SQLException {
        if (iface.isInstance(self)) {
            return self;
        }
        // Whatever runs on the unwrapped connection (COPY, say) is part of this transaction and
        // must go through the commit protocol.
        likelyWrites = true;
        return physical.unwrap(iface);
    }

    private void setAutoCommit(boolean on) throws SQLException {
        ensureOpen();
        if (on && !autoCommit) {
            commitOpenWork();
        }
        autoCommit = on;
    }

    private void commit() throws SQLException {
        ensureOpen();
        if (autoCommit) {
            throw SqlStates.error(SqlStates.NO_TRANSACTION, "lockstep: cannot commit when autocommit is on", null);
        }
        commitOpenWork();
    }

    private void rollback() throws SQLException {
        ensureOpen();
        if (autoCommit) {
            throw SqlStates.error(SqlStates.NO_TRANSACTION, "lockstep: cannot roll back when autocommit is on", null);
        }
        likelyWrites = false;
        physical.rollback();
    }

    private void commitOpenWork() throws SQLException {
        // Once temporary objects are in play, a blind PREPARE could fail a transaction that
        // changed nothing mirrored; take the path that collects first.
        boolean writes = likelyWrites && !temporaryObjects;
        likelyWrites = false;
        committer.commit(physical, writes);
    }

    private void close() throws SQLException {
        if (closed) {
            return;
        }
        closed = true;
        try {
            if (!physical.isClosed()) {
                if (autoCommit && likelyWrites) {
                    // Work done through an unwrapped connection in autocommit mode (COPY, say)
                    // is committed like an autocommitted statement would have been.
                    commitOpenWork();
                } else {
                    physical.rollback();
                }
            }
        } finally {
            try {
                physical.close();
            } finally {
                onClose.run();
            }
        }
    }

    /** Called by statements before they run SQL. */
    void beforeExecute(String sql) {
        if (sql == null || StatementKind.likelyWrites(sql)) {
            likelyWrites = true;
        }
        if (sql != null && StatementKind.mentionsTemporary(sql)) {
            temporaryObjects = true;
        }
    }

    /** Called by statements after SQL ran; commits it when autocommit is on. */
    void afterExecute(boolean succeeded) throws SQLException {
        if (!autoCommit) {
            return;
        }
        if (succeeded) {
            commitOpenWork();
        } else {
            likelyWrites = false;
            physical.rollback();
        }
    }

    boolean autoCommit() {
        return autoCommit;
    }

    Connection self() {
        return self;
    }

    private Statement wrapStatement(Statement statement, String sql) {
        Class<?> type = statement instanceof CallableStatement ? CallableStatement.class
                : statement instanceof PreparedStatement ? PreparedStatement.class : Statement.class;
        return (Statement) Proxy.newProxyInstance(LockstepConnection.class.getClassLoader(), new Class<?>[] {type},
                new LockstepStatement(this, statement, sql));
    }

    static Object delegate(Object target, Method method, Object[] args) throws Throwable {
        try {
            return method.invoke(target, args);
        } catch (InvocationTargetException e) {
            throw e.getCause();
        }
    }
}
