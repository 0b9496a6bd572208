package dev.lockstep.jdbc;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.Method;
import java.sql.SQLException;
import java.sql.Statement;

/**
 * A statement of a {@link LockstepConnection}: runs on the principal and, when the application
 * has autocommit on, commits each execution through the mirrored commit protocol.
 */
final class LockstepStatement implements InvocationHandler {

    private final LockstepConnection connection;
    private final Statement physical;
    private final String preparedSql;

    LockstepStatement(LockstepConnection connection, Statement physical, String preparedSql) {
        this.connection = connection;
        this.physical = physical;
        this.preparedSql = preparedSql;
    }

    @Override
    public Object invoke(Object proxy, Method method, Object[] args) throws Throwable {
        String name = method.getName();
        switch (name) {
            case "getConnection": return connection.self();
            case "unwrap": return ((Class<?>) args[0]).isInstance(proxy) ? proxy : physical.unwrap((Class<?>) args[0]);
            case "isWrapperFor": return ((Class<?>) args[0]).isInstance(proxy) || physical.isWrapperFor((Class<?>) args[0]);
            case "toString": return "LockstepStatement[" + physical + "]";
            case "hashCode": return System.identityHashCode(proxy);
            case "equals": return proxy == args[0];
            default: break;
        }
        if (!name.startsWith("execute")) {
            return LockstepConnection.delegate(physical, method, args);
        }
        return execute(method, args);
    }

    private Object execute(Method method, Object[] args) throws Throwable {
        String sql = args != null && args.length > 0 && args[0] instanceof String ? (String) args[0] : preparedSql;
        connection.beforeExecute(sql);
        if (connection.autoCommit()) {
            // A portal would not survive the commit that follows; read the whole result now.
            physical.setFetchSize(0);
        }
        Object result;
        try {
            result = LockstepConnection.delegate(physical, method, args);
        } catch (Throwable failure) {
            rollbackAfterFailure(failure);
            throw failure;
        }
        connection.afterExecute(true);
        return result;
    }

    private void rollbackAfterFailure(Throwable failure) {
        try {
            connection.afterExecute(false);
        } catch (SQLException rollbackFailure) {
            failure.addSuppressed(rollbackFailure);
        }
    }
}
