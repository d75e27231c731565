///usr/bin/env jbang "$0" "$@" ; exit $?
//JAVA 17+
//DESCRIPTION A faithful fake of Envoy's admin API (and, optionally, pilot-agent's quit endpoint)
//DESCRIPTION on loopback, for trying envoy-preflight on a laptop and for its tests.

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpHandler;
import com.sun.net.httpserver.HttpServer;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * Serves what envoy-preflight talks to, as Envoy and pilot-agent answer it:
 * <ul>
 * <li>GET /server_info: always HTTP 200 JSON; top-level "state" goes PRE_INITIALIZING,
 *     INITIALIZING, then LIVE once --live-after has passed. The node metadata holds a "state"
 *     key of its own, as real metadata may, so a reader that greps for "state" is caught out.
 * <li>GET /ready: 200 "LIVE\n", else 503 with the state.
 * <li>POST /quitquitquit: 200 "OK\n", then the fake stops serving (Envoy exits); other methods 405.
 * <li>with --pilot-agent-port: POST /quitquitquit there answers 200 "OK" and stops both, 403 for a
 *     caller that is not on loopback, 405 for other methods.
 * <li>with --generic-port: a sidecar that is not Envoy, as Linkerd's proxy serves it on :4191:
 *     GET /ready answers 200 "ready" once LIVE, else 503; POST /shutdown answers 200 and stops
 *     every port (405 for other methods). For GENERIC_READY_ENDPOINTS and GENERIC_QUIT_ENDPOINTS.
 * </ul>
 * A real sidecar stops listening once told to quit; {@link #stayAfterQuit} (--stay-after-quit) is the
 * misbehaviour of one that answers the quit and keeps running (a proxy draining forever).
 * Run it: {@code jbang examples/local/FakeEnvoy.java --port 9901 --live-after 3s}
 */
public class FakeEnvoy implements AutoCloseable {

    /** One request as the fake saw it, with the time it arrived (System.nanoTime). */
    public record Request(String server, String method, String path, long nanos) {
        @Override
        public String toString() {
            return server + " " + method + " " + path;
        }
    }

    private final HttpServer admin;
    private HttpServer pilotAgent;
    private HttpServer generic;
    private final ExecutorService executor = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "fake-envoy");
        t.setDaemon(true);
        return t;
    });
    private final long startedNanos = System.nanoTime();
    private volatile Duration liveAfter;
    private volatile String forcedState;
    private final Map<String, HttpHandler> overrides = new ConcurrentHashMap<>();
    private final List<Request> requests = new CopyOnWriteArrayList<>();
    private final CountDownLatch quit = new CountDownLatch(1);
    private final CountDownLatch closed = new CountDownLatch(1);
    private volatile Consumer<String> log = line -> { };
    private volatile boolean stayAfterQuit;

    private FakeEnvoy(int port, Duration liveAfter) throws IOException {
        this.liveAfter = liveAfter;
        this.admin = serve(port, "admin", this::serveAdmin);
    }

    /** Starts serving on 127.0.0.1:port (0: any free port); LIVE once liveAfter has passed. */
    public static FakeEnvoy start(int port, Duration liveAfter) throws IOException {
        return new FakeEnvoy(port, liveAfter);
    }

    /** Also serves pilot-agent's POST /quitquitquit on port (0: any free port). */
    public FakeEnvoy withPilotAgent(int port) throws IOException {
        pilotAgent = serve(port, "pilot-agent", this::servePilotAgent);
        return this;
    }

    /** Also serves a generic sidecar's GET /ready and POST /shutdown on port (0: any free port). */
    public FakeEnvoy withGenericSidecar(int port) throws IOException {
        generic = serve(port, "generic", this::serveGeneric);
        return this;
    }

    /** One server on 127.0.0.1:port (0: any free port), its requests recorded under name. */
    private HttpServer serve(int port, String name, HttpHandler faithful) throws IOException {
        HttpServer server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 50);
        server.setExecutor(executor);
        server.createContext("/", exchange -> dispatch(name, exchange, faithful));
        server.start();
        return server;
    }

    public URI genericUrl() {
        return URI.create("http://127.0.0.1:" + generic.getAddress().getPort());
    }

    public FakeEnvoy logTo(Consumer<String> log) {
        this.log = log;
        return this;
    }

    public URI url() {
        return URI.create("http://127.0.0.1:" + admin.getAddress().getPort());
    }

    public URI pilotAgentUrl() {
        return URI.create("http://127.0.0.1:" + pilotAgent.getAddress().getPort());
    }

    /** Answers every quit with 200 as before, but keeps serving: a sidecar that never leaves. */
    public FakeEnvoy stayAfterQuit() {
        stayAfterQuit = true;
        return this;
    }

    /** Turns LIVE this long after the fake started. */
    public void liveAfter(Duration d) {
        liveAfter = d;
    }

    /** Pins the state (e.g. DRAINING), or null to follow the start-up timeline again. */
    public void forceState(String state) {
        forcedState = state;
    }

    /** Serves path on the admin port with handler instead of the faithful behaviour. */
    public void override(String path, HttpHandler handler) {
        overrides.put("admin " + path, handler);
    }

    /** Serves path on the pilot-agent port with handler instead of the faithful behaviour. */
    public void overridePilotAgent(String path, HttpHandler handler) {
        overrides.put("pilot-agent " + path, handler);
    }

    /** Serves path on the generic sidecar's port with handler instead of the faithful behaviour. */
    public void overrideGeneric(String path, HttpHandler handler) {
        overrides.put("generic " + path, handler);
    }

    /** Ways an endpoint can misbehave (connection refused is simply a port nobody serves). */
    public enum Fault {
        /** accepts the request and never answers */
        NEVER_ANSWER,
        /** promises 4096 bytes, sends 100, closes the connection */
        CUT_MID_BODY,
        HTTP_404, HTTP_405, HTTP_500, HTTP_503,
        /** HTTP 200 with an HTML page */
        NOT_JSON,
        /** HTTP 200 JSON without "state" */
        NO_STATE,
        /** HTTP 200 JSON with "state": "live" */
        LOWERCASE_LIVE,
        /** HTTP 200, 10 MB of JSON: nested "LIVE"s, top-level state INITIALIZING at the very end */
        HUGE_BODY,
        /** HTTP 200, then the body one byte per 100 ms, forever */
        DRIP,
        /** HTTP 302 to another path */
        REDIRECT;

        /** Reads the label (never-answer) or the constant's name (NEVER_ANSWER). */
        public static Fault parse(String name) {
            return valueOf(name.toUpperCase(java.util.Locale.ROOT).replace('-', '_'));
        }

        /** How --help, the log and the docs spell it: never-answer, http-503 (name() stays for code). */
        public String label() {
            return name().toLowerCase(java.util.Locale.ROOT).replace('_', '-');
        }
    }

    /** A handler that misbehaves as fault says, until the fake is closed. */
    public HttpHandler misbehave(Fault fault) {
        return exchange -> {
            log.accept(exchange.getRequestMethod() + " " + exchange.getRequestURI().getPath() + " -> fault " + fault.label());
            switch (fault) {
                case NEVER_ANSWER -> awaitClose(Duration.ofMinutes(10));
                case CUT_MID_BODY -> {
                    exchange.sendResponseHeaders(200, 4096);
                    exchange.getResponseBody().write(serverInfo("LIVE").substring(0, 100).getBytes(StandardCharsets.UTF_8));
                    exchange.getResponseBody().flush();
                    throw new IOException("cut mid-body on purpose");
                }
                case HTTP_404, HTTP_405, HTTP_500, HTTP_503 ->
                        reply(exchange, Integer.parseInt(fault.name().substring(5)), "text/plain", "fault\n");
                case NOT_JSON -> reply(exchange, 200, "text/html", "<html><body>LIVE</body></html>\n");
                case NO_STATE -> reply(exchange, 200, "application/json", "{\"version\":\"fake\",\"uptime\":\"3s\"}\n");
                case LOWERCASE_LIVE -> reply(exchange, 200, "application/json", "{\"state\":\"live\"}\n");
                case HUGE_BODY -> {
                    exchange.getResponseHeaders().set("Content-Type", "application/json");
                    exchange.sendResponseHeaders(200, 0); // chunked
                    try (OutputStream out = new java.io.BufferedOutputStream(exchange.getResponseBody(), 65536)) {
                        out.write("{\"padding\":[".getBytes(StandardCharsets.UTF_8));
                        byte[] item = "{\"state\":\"LIVE\",\"blob\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"},"
                                .getBytes(StandardCharsets.UTF_8);
                        for (long written = 0; written < 10L << 20; written += item.length) out.write(item);
                        out.write("{}],\"state\":\"INITIALIZING\"}".getBytes(StandardCharsets.UTF_8));
                    }
                }
                case DRIP -> {
                    exchange.sendResponseHeaders(200, 0);
                    OutputStream out = exchange.getResponseBody();
                    while (!awaitClose(Duration.ofMillis(100))) {
                        out.write(' ');
                        out.flush();
                    }
                }
                case REDIRECT -> {
                    exchange.getResponseHeaders().set("Location", "/elsewhere");
                    reply(exchange, 302, "text/plain", "moved\n");
                }
            }
        };
    }

    /** True once the fake is closed; waits at most d. */
    private boolean awaitClose(Duration d) {
        try {
            return closed.await(d.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return true;
        }
    }

    public List<Request> requests() {
        return List.copyOf(requests);
    }

    /** True once /quitquitquit was honoured (on Envoy's port or pilot-agent's). */
    public boolean awaitQuit(Duration timeout) throws InterruptedException {
        return quit.await(timeout.toMillis(), TimeUnit.MILLISECONDS);
    }

    /** When the start-up timeline turns (or turned) LIVE, on the wall clock. */
    public java.time.Instant liveAt() {
        long nanosFromNow = startedNanos + liveAfter.toNanos() - System.nanoTime();
        return java.time.Instant.now().plusNanos(nanosFromNow);
    }

    public String state() {
        if (forcedState != null) return forcedState;
        long elapsed = System.nanoTime() - startedNanos;
        if (elapsed >= liveAfter.toNanos()) return "LIVE";
        return elapsed < liveAfter.toNanos() / 2 ? "PRE_INITIALIZING" : "INITIALIZING";
    }

    @Override
    public void close() {
        closed.countDown();
        stopServing();
        executor.shutdownNow();
    }

    private void dispatch(String server, HttpExchange exchange, HttpHandler faithful) throws IOException {
        String path = exchange.getRequestURI().getPath();
        requests.add(new Request(server, exchange.getRequestMethod(), path, System.nanoTime()));
        HttpHandler handler = overrides.getOrDefault(server + " " + path, faithful);
        try {
            handler.handle(exchange);
        } finally {
            exchange.close();
        }
    }

    private void serveAdmin(HttpExchange exchange) throws IOException {
        String method = exchange.getRequestMethod();
        String state = state();
        switch (exchange.getRequestURI().getPath()) {
            case "/server_info" -> {
                log.accept(method + " /server_info -> 200 " + state);
                reply(exchange, 200, "application/json", serverInfo(state));
            }
            case "/ready" -> reply(exchange, state.equals("LIVE") ? 200 : 503, "text/plain", state + "\n");
            case "/quitquitquit" -> quitOnPost(exchange, "POST /quitquitquit", "OK\n", "This endpoint requires POST\n");
            default -> reply(exchange, 404, "text/plain", "invalid path\n");
        }
    }

    private void servePilotAgent(HttpExchange exchange) throws IOException {
        if (!exchange.getRequestURI().getPath().equals("/quitquitquit")) {
            reply(exchange, 404, "text/plain", "404 page not found\n");
        } else if (!exchange.getRemoteAddress().getAddress().isLoopbackAddress()) {
            reply(exchange, 403, "text/plain", "forbidden\n");
        } else {
            quitOnPost(exchange, "pilot-agent POST /quitquitquit", "OK", "method not allowed\n");
        }
    }

    /** A quit endpoint: POST answers 200 and stops serving, as the real ones do; other methods 405. */
    private void quitOnPost(HttpExchange exchange, String what, String body, String refusal) throws IOException {
        if (!exchange.getRequestMethod().equals("POST")) {
            reply(exchange, 405, "text/plain", refusal);
            return;
        }
        log.accept(what + " -> 200, quitting");
        reply(exchange, 200, "text/plain", body);
        quit();
    }

    /** Like Envoy and pilot-agent, stop serving right after answering. */
    private void quit() {
        quit.countDown();
        if (stayAfterQuit) return;
        new Thread(this::stopServing, "fake-envoy-quit").start();
    }

    private void stopServing() {
        admin.stop(0);
        if (pilotAgent != null) pilotAgent.stop(0);
        if (generic != null) generic.stop(0);
    }

    private void serveGeneric(HttpExchange exchange) throws IOException {
        String method = exchange.getRequestMethod();
        switch (exchange.getRequestURI().getPath()) {
            case "/ready" -> {
                boolean ready = state().equals("LIVE");
                log.accept("generic " + method + " /ready -> " + (ready ? 200 : 503));
                reply(exchange, ready ? 200 : 503, "text/plain", ready ? "ready\n" : "not ready\n");
            }
            case "/shutdown" -> quitOnPost(exchange, "generic POST /shutdown", "shutdown\n", "method not allowed\n");
            default -> reply(exchange, 404, "text/plain", "not found\n");
        }
    }

    static String serverInfo(String state) {
        // Field order as recent Envoy prints it: "state" is neither first nor alone.
        return "{\n \"version\": \"fake/1.31.0/Clean/RELEASE/BoringSSL\",\n"
                + " \"node\": {\n  \"id\": \"sidecar~10.0.0.7~job-abc.default~default.svc.cluster.local\",\n"
                + "  \"metadata\": {\"state\": \"LIVE\", \"CLUSTER_ID\": \"Kubernetes\"}\n },\n"
                + " \"state\": \"" + state + "\",\n"
                + " \"hot_restart_version\": \"11.104\",\n"
                + " \"command_line_options\": {\"concurrency\": 2, \"mode\": \"Serve\"},\n"
                + " \"uptime_current_epoch\": \"3s\",\n \"uptime_all_epochs\": \"3s\"\n}\n";
    }

    public static void reply(HttpExchange exchange, int status, String contentType, String body)
            throws IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", contentType);
        exchange.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(bytes);
        }
    }

    public static void main(String[] args) throws Exception {
        int port = 9901;
        Integer pilotPort = null;
        Integer genericPort = null;
        Duration liveAfter = Duration.ofSeconds(2);
        List<String> faults = new java.util.ArrayList<>();
        boolean stay = false;
        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            String value = i + 1 < args.length ? args[i + 1] : null;
            switch (arg) {
                case "--port" -> port = Integer.parseInt(require(arg, value));
                case "--pilot-agent-port" -> pilotPort = Integer.parseInt(require(arg, value));
                case "--generic-port" -> genericPort = Integer.parseInt(require(arg, value));
                case "--live-after" -> liveAfter = seconds(require(arg, value));
                case "--fault" -> faults.add(require(arg, value));
                case "--stay-after-quit" -> {
                    stay = true;
                    i--; // takes no value
                }
                case "-h", "--help" -> {
                    System.out.println("Usage: FakeEnvoy [--port N (9901)] [--live-after DUR (2s)]"
                            + " [--pilot-agent-port N] [--generic-port N] [--fault PATH=FAULT]... [--stay-after-quit]\n"
                            + "  --generic-port: GET /ready (200 once LIVE) and POST /shutdown, as Linkerd's proxy\n"
                            + "  DUR: 500ms, 3s or a number of seconds\n"
                            + "  FAULT (on the admin port): " + String.join(", ",
                                    java.util.Arrays.stream(Fault.values()).map(Fault::label).toList()));
                    return;
                }
                default -> throw new IllegalArgumentException("unknown option " + arg + " (see --help)");
            }
            i++;
        }
        FakeEnvoy fake = FakeEnvoy.start(port, liveAfter).logTo(line -> System.err.println("fake-envoy: " + line));
        if (pilotPort != null) fake.withPilotAgent(pilotPort);
        if (genericPort != null) fake.withGenericSidecar(genericPort);
        if (stay) fake.stayAfterQuit();
        for (String f : faults) {
            String[] pathAndFault = f.split("=", 2);
            fake.override(pathAndFault[0], fake.misbehave(Fault.parse(pathAndFault[1])));
        }
        System.err.println("fake-envoy: admin API on " + fake.url() + ", LIVE after " + liveAfter.toMillis()
                + " ms" + (pilotPort == null ? "" : ", pilot-agent on " + fake.pilotAgentUrl())
                + (genericPort == null ? "" : ", generic sidecar on " + fake.genericUrl()));
        if (stay) fake.closed.await(); // quit answered, never left: ended by a signal
        fake.quit.await();
        Thread.sleep(100); // let the last answer leave before the JVM exits
        System.err.println("fake-envoy: quit");
        System.exit(0);
    }

    private static String require(String option, String value) {
        if (value == null) throw new IllegalArgumentException(option + " needs a value");
        return value;
    }

    /** "500ms", "3s" or bare seconds: all a local run needs. */
    private static Duration seconds(String raw) {
        if (raw.endsWith("ms")) return Duration.ofMillis(Long.parseLong(raw.substring(0, raw.length() - 2)));
        String s = raw.endsWith("s") ? raw.substring(0, raw.length() - 1) : raw;
        return Duration.ofMillis(Math.round(Double.parseDouble(s) * 1000));
    }
}
