// Neo4j 5 Community as a server for the test suite: the embedded DBMS (Maven Central's
// org.neo4j:neo4j) with its Bolt connector on 127.0.0.1, and nothing else.
//
//   java -cp 'JARS/*' scripts/jvm/neo4j/Neo4jServer.java PORT DATA_DIR PASSWORD
//
// The user is `neo4j` with PASSWORD (no change required); data lives in DATA_DIR. It
// prints "ready" once Bolt answers and stops cleanly on SIGTERM.

import java.nio.file.Path;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;

public final class Neo4jServer {
    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: Neo4jServer PORT DATA_DIR PASSWORD");
            System.exit(2);
        }
        int port = Integer.parseInt(args[0]);
        Path home = Path.of(args[1]).toAbsolutePath();
        String password = args[2];

        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                .setConfig(BoltConnector.advertised_address, new SocketAddress("127.0.0.1", port))
                .setConfig(HttpConnector.enabled, false)
                .setConfig(HttpsConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.auth_enabled, true)
                .setConfig(GraphDatabaseSettings.pagecache_memory, 64L * 1024 * 1024)
                .build();
        Runtime.getRuntime().addShutdownHook(new Thread(dbms::shutdown));

        // The first start's `neo4j` user must change its password before use; set it here.
        // A restart with the same DATA_DIR finds it set already, which Neo4j refuses to repeat.
        try {
            dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME).executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $password CHANGE NOT REQUIRED",
                    java.util.Map.of("password", password));
        } catch (RuntimeException error) {
            if (!String.valueOf(error.getMessage()).contains("cannot be the same")) {
                throw error;
            }
        }
        System.out.println("ready: bolt://127.0.0.1:" + port);
        System.out.flush();
        Thread.currentThread().join();
    }
}
