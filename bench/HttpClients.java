import java.io.InputStream;
import java.lang.management.ManagementFactory;
import java.net.HttpURLConnection;
import java.net.Proxy;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/**
 * One readiness poll through the tool's Http (HttpURLConnection with its deadline), bare HttpURLConnection, or HttpClient, in a fresh JVM; prints what it cost:
 * {@code classes=N threads=N rssKB=N ms=N}. Run by Bench.java (table h), never by the tool.
 * The body is read by the same streaming JSON reader in every mode, so only the client differs.
 */
public class HttpClients {
    public static void main(String[] args) throws Exception {
        String mode = args[0];
        URI uri = URI.create(args[1]);
        var classes = ManagementFactory.getClassLoadingMXBean();
        long before = classes.getTotalLoadedClassCount();
        long t0 = System.nanoTime();
        String state = switch (mode) {
            case "tool" -> EnvoyPreflight.Http.exchange("GET", uri, java.util.Map.of(), Duration.ofSeconds(1),
                    new EnvoyPreflight.Http.Abort(), (status, body) -> EnvoyPreflight.Wait.ServerInfo.state(body));
            case "urlconnection" -> {
                HttpURLConnection c = (HttpURLConnection) uri.toURL().openConnection(Proxy.NO_PROXY);
                c.setConnectTimeout(1000);
                c.setReadTimeout(1000);
                c.setInstanceFollowRedirects(false);
                try (InputStream in = c.getInputStream()) {
                    yield EnvoyPreflight.Wait.ServerInfo.state(in);
                }
            }
            case "httpclient" -> {
                HttpClient client = HttpClient.newBuilder().proxy(HttpClient.Builder.NO_PROXY)
                        .connectTimeout(Duration.ofSeconds(1)).followRedirects(HttpClient.Redirect.NEVER).build();
                HttpResponse<InputStream> r = client.send(HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(1))
                        .build(), HttpResponse.BodyHandlers.ofInputStream());
                try (InputStream in = r.body()) {
                    yield EnvoyPreflight.Wait.ServerInfo.state(in);
                }
            }
            default -> throw new IllegalArgumentException(mode);
        };
        long ms = (System.nanoTime() - t0) / 1_000_000;
        if (!"LIVE".equals(state)) throw new IllegalStateException("state " + state);
        long rss = Files.readString(Path.of("/proc/self/status")).lines().filter(l -> l.startsWith("VmRSS:"))
                .mapToLong(l -> Long.parseLong(l.replaceAll("\\D", ""))).findFirst().orElse(-1);
        System.out.println("classes=" + (classes.getTotalLoadedClassCount() - before)
                + " threads=" + Thread.getAllStackTraces().size() + " rssKB=" + rss + " ms=" + ms);
    }
}
