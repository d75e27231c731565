import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.parallel.ResourceLock;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;

import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The examples a platform engineer copies: every manifest parses and is configured as it says. */
class ExamplesTests {
    @org.junit.jupiter.api.io.TempDir
    Path tmp;

    static final Path ROOT = TestSupport.repositoryRoot();

    /** One pod template of a Job or CronJob, with the file it came from. */
    record Pod(String file, Map<String, Object> job, Map<String, Object> template) {
        @SuppressWarnings("unchecked")
        List<Map<String, Object>> containers() {
            return (List<Map<String, Object>>) map(template, "spec").get("containers");
        }

        Map<String, Object> spec() {
            return map(template, "spec");
        }

        Map<String, String> annotations() {
            Map<String, Object> metadata = map(template, "metadata");
            @SuppressWarnings("unchecked")
            Map<String, String> a = metadata == null ? null : (Map<String, String>) metadata.get("annotations");
            return a == null ? Map.of() : a;
        }

        /** The container that runs envoy-preflight: the one configured with its variables. */
        Map<String, Object> wrapped() {
            return containers().stream().filter(c -> env(c).keySet().stream().anyMatch(TestSupport.TOOL_VARIABLES::contains))
                    .findFirst().orElseThrow(() -> new AssertionError(file + ": no container sets envoy-preflight's variables"));
        }

        Map<String, Object> container(String name) {
            return containers().stream().filter(c -> name.equals(c.get("name"))).findFirst()
                    .orElseThrow(() -> new AssertionError(file + ": no container " + name));
        }
    }

    static List<Map<String, Object>> documents = new ArrayList<>();
    static List<Pod> pods = new ArrayList<>();

    @BeforeAll
    @SuppressWarnings("unchecked")
    static void load() throws IOException {
        List<Path> files;
        try (Stream<Path> walk = Files.walk(ROOT.resolve("examples"))) {
            files = walk.filter(p -> p.toString().endsWith(".yaml") || p.toString().endsWith(".yml")).sorted().toList();
        }
        assertTrue(files.size() >= 3, "YAML files under examples/: " + files);
        for (Path f : files) {
            for (Object doc : new Yaml(new SafeConstructor(new LoaderOptions())).loadAll(Files.readString(f))) {
                Map<String, Object> d = (Map<String, Object>) doc;
                assertNotNull(d, f + " has an empty document");
                d.put("__file", ROOT.relativize(f).toString());
                documents.add(d);
                String kind = (String) d.get("kind");
                if ("Job".equals(kind)) {
                    pods.add(new Pod(d.get("__file").toString(), map(d, "spec"), map(map(d, "spec"), "template")));
                } else if ("CronJob".equals(kind)) {
                    Map<String, Object> job = map(map(d, "spec"), "jobTemplate");
                    pods.add(new Pod(d.get("__file").toString(), map(job, "spec"), map(map(job, "spec"), "template")));
                }
            }
        }
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> map(Map<String, Object> m, String key) {
        return m == null ? null : (Map<String, Object>) m.get(key);
    }

    @SuppressWarnings("unchecked")
    static Map<String, String> env(Map<String, Object> container) {
        Map<String, String> env = new LinkedHashMap<>();
        List<Map<String, Object>> list = (List<Map<String, Object>>) container.get("env");
        if (list != null) list.forEach(e -> env.put((String) e.get("name"), String.valueOf(e.get("value"))));
        return env;
    }

    /** What envoy-preflight makes of the container's environment and arguments. */
    @SuppressWarnings("unchecked")
    static EnvoyPreflight.Config config(Map<String, Object> container) throws EnvoyPreflight.Config.Invalid {
        List<String> args = (List<String>) container.get("args");
        return EnvoyPreflight.Config.resolve(TestSupport.tool(env(container), args.toArray(String[]::new)));
    }

    @org.junit.jupiter.api.Tag("fast")
    @Test
    void everyManifestParsesAndNamesItsKind() {
        assertFalse(documents.isEmpty());
        for (Map<String, Object> d : documents) {
            assertNotNull(d.get("apiVersion"), d.get("__file") + ": apiVersion");
            assertNotNull(d.get("kind"), d.get("__file") + ": kind");
            assertNotNull(map(d, "metadata").get("name"), d.get("__file") + ": metadata.name");
        }
        assertTrue(pods.size() >= 3, "Jobs and CronJobs: " + pods.size());
    }

    @org.junit.jupiter.api.Tag("fast")
    @Test
    void everyWrappedContainerIsAcceptedByTheToolAndQuitsALoopbackSidecar() throws Exception {
        for (Pod pod : pods) {
            EnvoyPreflight.Config c = config(pod.wrapped());
            URI admin = c.url(EnvoyPreflight.Setting.ADMIN_API);
            assertTrue(admin == null || EnvoyPreflight.Http.isLoopback(admin), pod.file() + ": " + admin);
            for (var target : EnvoyPreflight.Wait.targets(c)) {
                assertTrue(EnvoyPreflight.Http.isLoopback(target.uri()), pod.file() + ": " + target);
            }
            assertTrue(c.shouldWait(), pod.file());
            var plan = EnvoyPreflight.Plan.of(c, 0, false);
            // a sidecar with no quit API may watch the exit file instead
            assertTrue(!plan.steps().isEmpty() || c.values().get(EnvoyPreflight.Setting.EXIT_FILE) != null,
                    pod.file() + ": " + plan.nothingBecause());
            assertFalse(c.command().isEmpty(), pod.file() + ": the app to run");
        }
    }

    @org.junit.jupiter.api.Tag("fast")
    @Test
    void restartPolicyAndBackoffLimitAreChosenDeliberately() throws Exception {
        for (Pod pod : pods) {
            Object policy = pod.spec().get("restartPolicy");
            assertTrue("Never".equals(policy) || "OnFailure".equals(policy), pod.file() + ": restartPolicy " + policy);
            assertNotNull(pod.job().get("backoffLimit"), pod.file() + ": backoffLimit");
            if ("OnFailure".equals(policy)) {
                // the same pod restarts the app: its sidecar must survive a failure
                assertTrue(config(pod.wrapped()).on(EnvoyPreflight.Setting.NEVER_KILL_ISTIO_ON_FAILURE), pod.file());
            }
        }
    }

    @org.junit.jupiter.api.Tag("fast")
    @Test
    void istioPodsWaitForTheirConfigurationAndQuitPilotAgentLast() throws Exception {
        List<Pod> istio = pods.stream().filter(p -> "true".equals(p.annotations().get("sidecar.istio.io/inject")))
                .toList();
        assertTrue(istio.size() >= 3, "Istio pods: " + istio.size());
        for (Pod pod : istio) {
            EnvoyPreflight.Config c = config(pod.wrapped());
            assertEquals(URI.create("http://127.0.0.1:15000"), c.url(EnvoyPreflight.Setting.ADMIN_API), pod.file());
            var targets = EnvoyPreflight.Wait.targets(c);
            assertEquals(new EnvoyPreflight.Wait.Live(URI.create("http://127.0.0.1:15000/server_info")),
                    targets.get(0), pod.file());
            if (!pod.file().endsWith("cronjob.yaml")) {
                assertEquals(new EnvoyPreflight.Wait.Answers2xx(URI.create("http://127.0.0.1:15021/healthz/ready")),
                        targets.get(1), pod.file() + ": configuration received, not only LIVE");
            }
            var steps = EnvoyPreflight.Plan.of(c, 0, false).steps();
            assertEquals(new EnvoyPreflight.Plan.Post(URI.create("http://127.0.0.1:15020/quitquitquit")),
                    steps.get(steps.size() - 1), pod.file());
        }
        String istioJob = Files.readString(ROOT.resolve("examples/kubernetes/istio-job.yaml"));
        assertTrue(istioJob.contains("holdApplicationUntilProxyStarts"), "istio-job.yaml says why it waits on 15021");
    }

    @org.junit.jupiter.api.Tag("fast")
    @Test
    void theLinkerdJobWaitsOnItsProxyAndShutsItDownWithTheEndpointEnabled() throws Exception {
        Pod pod = pods.stream().filter(p -> "enabled".equals(p.annotations().get("linkerd.io/inject"))).findFirst()
                .orElseThrow(() -> new AssertionError("no Linkerd Job"));
        assertEquals("enabled", pod.annotations().get("config.linkerd.io/proxy-admin-shutdown"),
                "the proxy's /shutdown is off unless enabled");
        EnvoyPreflight.Config c = config(pod.wrapped());
        assertEquals(null, c.url(EnvoyPreflight.Setting.ADMIN_API));
        assertEquals(List.of(new EnvoyPreflight.Wait.Answers2xx(URI.create("http://127.0.0.1:4191/ready"))),
                EnvoyPreflight.Wait.targets(c));
        assertEquals(List.of(new EnvoyPreflight.Plan.Post(URI.create("http://127.0.0.1:4191/shutdown"))),
                EnvoyPreflight.Plan.of(c, 0, false).steps());
        assertEquals(EnvoyPreflight.Plan.of(c, 0, false).steps(), EnvoyPreflight.Plan.of(c, 1, false).steps(), "failures too");
    }

    @org.junit.jupiter.api.Tag("fast")
    @Test
    @SuppressWarnings("unchecked")
    void theTwoSidecarJobStartsTheCloudSqlProxyWithThePortsTheToolUses() throws Exception {
        Pod pod = twoSidecars();
        List<String> args = (List<String>) pod.container("cloud-sql-proxy").get("args");
        assertTrue(args.contains("--health-check") && args.contains("--quitquitquit"), args.toString());
        String httpPort = args.stream().filter(a -> a.startsWith("--http-port=")).findFirst().orElse("--http-port=9090");
        String adminPort = args.stream().filter(a -> a.startsWith("--admin-port=")).findFirst().orElse("--admin-port=9091");
        EnvoyPreflight.Config c = config(pod.wrapped());
        assertEquals(List.of("http://127.0.0.1:15000/server_info", "http://127.0.0.1:15021/healthz/ready",
                        "http://127.0.0.1:" + httpPort.split("=")[1] + "/readiness"),
                EnvoyPreflight.Wait.targets(c).stream().map(t -> t.uri().toString()).toList());
        assertEquals(List.of(new EnvoyPreflight.Plan.Post(URI.create("http://127.0.0.1:" + adminPort.split("=")[1]
                        + "/quitquitquit")), new EnvoyPreflight.Plan.Post(URI.create("http://127.0.0.1:15020/quitquitquit"))),
                EnvoyPreflight.Plan.of(c, 0, false).steps());
    }

    @Test
    @SuppressWarnings("unchecked")
    void theTwoSidecarJobsSettingsRunAgainstFakeSidecars() throws Exception {
        // The manifest's own environment, each sidecar port mapped to a fake on this machine.
        Pod pod = twoSidecars();
        try (FakeEnvoy fake = FakeEnvoy.start(0, Duration.ofMillis(300)).withPilotAgent(0).withGenericSidecar(0)) {
            fake.overrideGeneric("/healthz/ready", exchange -> FakeEnvoy.reply(exchange, 200, "text/plain", ""));
            fake.overrideGeneric("/readiness", exchange -> FakeEnvoy.reply(exchange, 200, "text/plain", "ok"));
            fake.overrideGeneric("/quitquitquit", exchange -> FakeEnvoy.reply(exchange, 200, "text/plain", "bye"));
            Map<String, String> ports = Map.of(":15000", ":" + fake.url().getPort(), ":15020",
                    ":" + fake.pilotAgentUrl().getPort(), ":15021", ":" + fake.genericUrl().getPort(),
                    ":9090", ":" + fake.genericUrl().getPort(), ":9091", ":" + fake.genericUrl().getPort());
            Map<String, String> env = new java.util.HashMap<>();
            env(pod.wrapped()).forEach((k, v) -> {
                for (var p : ports.entrySet()) v = v.replace(p.getKey(), p.getValue());
                env.put(k, v);
            });
            env.put("JOB_SECONDS", "0");
            try (var tool = TestSupport.Tool.start(env, ROOT.resolve("examples/docker/job.sh").toString())) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertTrue(tool.stdout().contains("job: done"), tool.stdout());
            }
            List<String> seen = fake.requests().stream().map(Object::toString).distinct().toList();
            assertEquals(List.of("admin GET /server_info", "generic GET /healthz/ready", "generic GET /readiness",
                    "generic POST /quitquitquit", "pilot-agent POST /quitquitquit"), seen);
        }
    }

    @org.junit.jupiter.api.Tag("fast")
    @Test
    @SuppressWarnings("unchecked")
    void aPodFailurePolicyFailsTheJobAtOnceOnlyForTheToolsConfigurationCodes() throws Exception {
        List<Pod> withPolicy = pods.stream().filter(p -> p.job().containsKey("podFailurePolicy")).toList();
        assertTrue(withPolicy.size() >= 3, "Jobs with a podFailurePolicy: " + withPolicy.size());
        for (Pod pod : withPolicy) {
            assertEquals("Never", pod.spec().get("restartPolicy"), pod.file() + ": a podFailurePolicy needs Never");
            List<Map<String, Object>> rules = (List<Map<String, Object>>) map(pod.job(), "podFailurePolicy").get("rules");
            Map<String, Object> failJob = rules.stream().filter(r -> "FailJob".equals(r.get("action"))).findFirst().orElseThrow();
            Map<String, Object> codes = map(failJob, "onExitCodes");
            assertEquals(pod.wrapped().get("name"), codes.get("containerName"), pod.file());
            assertEquals("In", codes.get("operator"), pod.file());
            // bad configuration and a command that cannot run: a retry fails the same way; 69 may pass on a retry
            assertEquals(List.of(EnvoyPreflight.Exit.USAGE.code, EnvoyPreflight.Exit.NOT_EXECUTABLE.code, EnvoyPreflight.Exit.NOT_FOUND.code),
                    codes.get("values"), pod.file());
            assertTrue(rules.stream().anyMatch(r -> "Ignore".equals(r.get("action"))), pod.file() + ": disruptions ignored");
        }
    }

    Pod named(String file) {
        return pods.stream().filter(p -> p.file().endsWith(file)).findFirst().orElseThrow(() -> new AssertionError("no " + file));
    }

    /** The wrapped container's environment with loopback ports and paths mapped to this machine's. */
    static Map<String, String> mapped(Pod pod, Map<String, String> replace) {
        Map<String, String> env = new java.util.HashMap<>();
        env(pod.wrapped()).forEach((k, v) -> {
            for (var r : replace.entrySet()) v = v.replace(r.getKey(), r.getValue());
            env.put(k, v);
        });
        env.put("JOB_SECONDS", "0");
        return env;
    }

    /** A fake log shipper named fluent-bit (its comm), recording the signals it gets, in dir. */
    static Path fakeFluentBit(Path dir) throws IOException {
        Path exe = Files.createDirectories(dir.resolve("bin")).resolve("fluent-bit");
        Files.writeString(exe, String.join("\n", "#!/bin/bash",
                "trap 'echo TERM >> \"" + dir.resolve("signals") + "\"; exit 0' TERM",
                "touch \"" + dir.resolve("shipping") + "\"",
                "while true; do sleep 0.05; done", ""));
        Files.setPosixFilePermissions(exe, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
        return exe;
    }

    @Test
    @SuppressWarnings("unchecked")
    void theExitFileShippersWatcherStopsItWhenTheJobEnds() throws Exception {
        Pod pod = named("log-shipper-exit-file-job.yaml");
        Path dir = Files.createDirectory(tmp.resolve("exit-file-pod"));
        Path shared = Files.createDirectories(dir.resolve("shared"));
        Path fluentBit = fakeFluentBit(dir);
        String watcher = ((List<String>) pod.container("fluent-bit").get("args")).get(0)
                .replace("/fluent-bit/bin/fluent-bit", fluentBit.toString()).replace("/shared", shared.toString());
        try (java.net.ServerSocket forward = new java.net.ServerSocket(0, 8, java.net.InetAddress.getLoopbackAddress())) {
            Process sidecar = new ProcessBuilder("/bin/sh", "-c", watcher).start();
            try {
                TestSupport.await("the shipper", () -> Files.exists(dir.resolve("shipping")));
                Map<String, String> env = mapped(pod, Map.of(":24224", ":" + forward.getLocalPort(), "/shared", shared.toString()));
                try (var tool = TestSupport.Tool.start(env, ROOT.resolve("examples/docker/job.sh").toString())) {
                    assertEquals(0, tool.exitCode(), tool.stderr());
                }
                assertEquals("0\n", Files.readString(shared.resolve("exit-code")));
                assertTrue(sidecar.waitFor(10, TimeUnit.SECONDS), "the shipper's container did not end");
                assertEquals(0, sidecar.exitValue());
                assertEquals("TERM\n", TestSupport.read(dir.resolve("signals")));
            } finally {
                sidecar.descendants().forEach(ProcessHandle::destroyForcibly);
                sidecar.destroyForcibly();
            }
        }
    }

    @Test
    void theQuitProcessShipperIsSignalledThroughTheSharedProcessNamespace() throws Exception {
        Pod pod = named("log-shipper-quit-process-job.yaml");
        assertEquals(true, pod.spec().get("shareProcessNamespace"));
        Path dir = Files.createDirectory(tmp.resolve("quit-process-pod"));
        // the pod's shared process namespace: one of the test's own, so that only its shipper is signalled
        try (var ns = TestSupport.PidNamespace.create();
             var forward = new java.net.ServerSocket(0, 8, java.net.InetAddress.getLoopbackAddress())) {
            Process shipper = ns.start(new ProcessBuilder(fakeFluentBit(dir).toString()));
            shipper.onExit().thenRun(() -> { // its forward port goes with it, as the confirmation expects
                try {
                    forward.close();
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });
            TestSupport.await("the shipper", () -> Files.exists(dir.resolve("shipping")));
            Map<String, String> env = mapped(pod, Map.of(":24224", ":" + forward.getLocalPort()));
            try (var tool = TestSupport.Tool.in(ns, env, ROOT.resolve("examples/docker/job.sh").toString())) {
                assertEquals(0, tool.exitCode(), tool.stderr());
            }
            assertTrue(shipper.waitFor(10, TimeUnit.SECONDS), "the shipper still runs");
            assertEquals("TERM\n", TestSupport.read(dir.resolve("signals")));
        }
    }

    @Test
    void theDaprJobsSettingsRunAgainstAFakeDaprd() throws Exception {
        Pod pod = named("dapr-job.yaml");
        assertEquals("true", pod.annotations().get("dapr.io/enabled"));
        List<String> seen = new java.util.concurrent.CopyOnWriteArrayList<>();
        final var daprd = com.sun.net.httpserver.HttpServer.create(
                new java.net.InetSocketAddress(java.net.InetAddress.getLoopbackAddress(), 0), 8);
        daprd.createContext("/", exchange -> {
            seen.add(exchange.getRequestMethod() + " " + exchange.getRequestURI().getPath() + " "
                    + exchange.getRequestHeaders().getFirst("dapr-api-token"));
            exchange.sendResponseHeaders(204, -1); // as daprd answers both
            exchange.close();
            if (exchange.getRequestMethod().equals("POST")) new Thread(() -> daprd.stop(0)).start(); // and leaves
        });
        daprd.start();
        try {
            Map<String, String> env = mapped(pod, Map.of());
            env.put("DAPR_HTTP_PORT", String.valueOf(daprd.getAddress().getPort())); // as Dapr's injector sets them
            env.put("DAPR_API_TOKEN", "injected-token");
            try (var tool = TestSupport.Tool.start(env, ROOT.resolve("examples/docker/job.sh").toString())) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertFalse(tool.stderr().contains("injected-token"), tool.stderr());
            }
            assertEquals(List.of("GET /v1.0/healthz/outbound injected-token", "POST /v1.0/shutdown injected-token"), seen);
        } finally {
            daprd.stop(0);
        }
    }

    Pod twoSidecars() {
        return pods.stream().filter(p -> p.containers().stream().anyMatch(c -> "cloud-sql-proxy".equals(c.get("name"))))
                .findFirst().orElseThrow(() -> new AssertionError("no Job with Istio and the Cloud SQL Auth Proxy"));
    }

    @org.junit.jupiter.api.Tag("fast")
    @Test
    @SuppressWarnings("unchecked")
    void thePlainEnvoyJobStopsEnvoyThroughTheAdminPortItsBootstrapOpens() throws Exception {
        Pod pod = pods.stream().filter(p -> p.containers().stream()
                .anyMatch(c -> String.valueOf(c.get("image")).startsWith("envoyproxy/envoy"))).findFirst()
                .orElseThrow(() -> new AssertionError("no Job with an envoyproxy/envoy sidecar"));
        EnvoyPreflight.Config c = config(pod.wrapped());
        assertEquals(List.of(new EnvoyPreflight.Plan.Fallback(new EnvoyPreflight.Plan.SignalAll("pilot-agent", "INT"),
                        new EnvoyPreflight.Plan.Post(URI.create(c.url(EnvoyPreflight.Setting.ADMIN_API) + "/quitquitquit")))),
                EnvoyPreflight.Plan.of(c, 0, false).steps());
        // The bootstrap in the ConfigMap mounted into the Envoy container opens exactly that admin address.
        Map<String, Object> envoy = pod.containers().stream()
                .filter(x -> String.valueOf(x.get("image")).startsWith("envoyproxy/envoy")).findFirst().orElseThrow();
        String configMapName = ((List<Map<String, Object>>) pod.spec().get("volumes")).stream()
                .filter(v -> v.containsKey("configMap")).map(v -> (String) map(v, "configMap").get("name"))
                .findFirst().orElseThrow();
        Map<String, Object> configMap = documents.stream().filter(d -> "ConfigMap".equals(d.get("kind"))
                && configMapName.equals(map(d, "metadata").get("name"))).findFirst().orElseThrow();
        String bootstrapYaml = (String) map(configMap, "data").get("envoy.yaml");
        Map<String, Object> bootstrap = new Yaml(new SafeConstructor(new LoaderOptions())).load(bootstrapYaml);
        Map<String, Object> admin = map(map(map(bootstrap, "admin"), "address"), "socket_address");
        assertEquals(c.url(EnvoyPreflight.Setting.ADMIN_API).getHost(), admin.get("address"));
        assertEquals(c.url(EnvoyPreflight.Setting.ADMIN_API).getPort(), admin.get("port_value"));
        assertTrue(String.valueOf(envoy.get("args")).contains("/etc/envoy/envoy.yaml"), envoy.toString());
    }

    @org.junit.jupiter.api.Tag("fast")
    @Test
    void theCronJobNeverOverlapsAndBoundsItsWait() throws Exception {
        Map<String, Object> cron = documents.stream().filter(d -> "CronJob".equals(d.get("kind"))).findFirst()
                .orElseThrow(() -> new AssertionError("no CronJob example"));
        assertTrue(List.of("Forbid", "Replace").contains(map(cron, "spec").get("concurrencyPolicy")),
                "concurrencyPolicy: " + map(cron, "spec").get("concurrencyPolicy"));
        Pod pod = pods.stream().filter(p -> p.file().equals(cron.get("__file"))).findFirst().orElseThrow();
        EnvoyPreflight.Config c = config(pod.wrapped());
        assertTrue(!c.duration(EnvoyPreflight.Setting.WAIT_TIMEOUT).isZero() || !c.duration(EnvoyPreflight.Setting.GIVE_UP_TIMEOUT).isZero(), "a wait timeout");
    }

    @org.junit.jupiter.api.Tag("fast")
    @Test
    void theImagesRunWhatTheManifestsAskFor() throws IOException {
        for (String dockerfile : List.of("Dockerfile", "Dockerfile.jar")) {
            String text = Files.readString(ROOT.resolve("examples/docker").resolve(dockerfile));
            assertTrue(text.contains("COPY examples/docker/job.sh /app/job.sh"), dockerfile);
            assertTrue(text.contains("CMD [\"/app/job.sh\"]"), dockerfile);
        }
        for (Pod pod : pods) {
            assertEquals(List.of("/app/job.sh"), pod.wrapped().get("args"), pod.file());
        }
        // The jar image passes the script's own JVM options, which `java -jar` would not read.
        String jarImage = Files.readString(ROOT.resolve("examples/docker/Dockerfile.jar"));
        Matcher m = Pattern.compile("PREFLIGHT_JAVA_OPTIONS=\"([^\"]*)\"").matcher(jarImage);
        assertTrue(m.find());
        assertEquals(TestSupport.RUNTIME_OPTIONS, List.of(m.group(1).split(" ")));
    }

    @org.junit.jupiter.api.Tag("launcher")
    @Test
    @ResourceLock(TestSupport.CPU)
    void theJBangImagesBuildStepsMakeTheLaunchersArchiveAndItsEntrypointRunsOffline() throws Exception {
        // No Docker engine here: the Dockerfile's own steps, run on this machine in a folder that
        // stands for the image's /opt/envoy-preflight, with its ENV pointed at folders of the test's.
        String dockerfile = Files.readString(ROOT.resolve("examples/docker/Dockerfile")).replace("\\\n", " ");
        Path image = Files.createDirectory(tmp.resolve("image"));
        Path work = Files.createDirectories(image.resolve("opt/envoy-preflight"));
        Map<String, String> env = new java.util.HashMap<>();
        env.put("JBANG_DIR", image.resolve("opt/jbang").toString());
        env.put("JBANG_REPO", image.resolve("opt/jbang/repository").toString());
        env.put("JBANG_NO_VERSION_CHECK", "true");
        Matcher copy = Pattern.compile("(?m)^COPY (jbang .*) \\./$").matcher(dockerfile);
        assertTrue(copy.find(), "COPY of the launcher and the script");
        for (String f : copy.group(1).split(" ")) Files.copy(ROOT.resolve(f), work.resolve(f));
        Path installed = LauncherTests.jbangLib(ROOT); // spare the test a Maven run: JBang's jars as bootstrapped
        Path lib = Files.createDirectories(work.resolve(".jbang").resolve(installed.getFileName()));
        try (Stream<Path> jars = Files.list(installed)) {
            for (Path jar : jars.filter(p -> p.toString().endsWith(".jar")).toList()) Files.copy(jar, lib.resolve(jar.getFileName()));
        }
        Matcher run = Pattern.compile("(?m)^RUN (\\./jbang .*)$").matcher(dockerfile);
        assertTrue(run.find(), "a RUN step through the launcher");
        for (String step : run.group(1).split("&&")) {
            if (!step.strip().startsWith("./jbang")) continue; // chmod, rm: image housekeeping
            ProcessBuilder pb = new ProcessBuilder("bash", "-c", step.strip()).directory(work.toFile())
                    .redirectErrorStream(true).redirectOutput(image.resolve("build.log").toFile());
            TestSupport.TOOL_VARIABLES.forEach(pb.environment()::remove);
            pb.environment().putAll(env);
            Process p = pb.start();
            assertTrue(p.waitFor(180, TimeUnit.SECONDS), step);
            assertEquals(0, p.exitValue(), step + ":\n" + TestSupport.read(image.resolve("build.log")));
        }
        try (Stream<Path> files = Files.list(lib)) {
            assertTrue(files.anyMatch(f -> f.getFileName().toString().matches("jbang-jvm-\\d+\\.(jsa|aot)")),
                    "the launcher's archive of JBang is made at build");
        }
        Matcher entry = Pattern.compile("(?m)^ENTRYPOINT \\[(.*)]$").matcher(dockerfile);
        assertTrue(entry.find());
        List<String> command = new ArrayList<>();
        for (String word : entry.group(1).split(",")) {
            command.add(word.strip().replace("\"", "").replace("/opt/envoy-preflight", work.toString()));
        }
        command.addAll(List.of("sh", "-c", "echo from the image"));
        ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true)
                .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()));
        TestSupport.TOOL_VARIABLES.forEach(pb.environment()::remove);
        pb.environment().putAll(env);
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), out);
        assertEquals("from the image\n", out, "offline, and nothing but the app's output");
    }

    @org.junit.jupiter.api.Tag("launcher")
    @Test
    @ResourceLock(TestSupport.CPU)
    void theReadmesLaptopCycleWithASidecarThatIsNotEnvoyRunsEndToEnd() throws Exception {
        String commands = readmeBashBlockAfter("A sidecar that is not Envoy");
        assertTrue(commands.contains("9902") && commands.contains("4191"), commands);
        String out = runLaptopCycle(commands.replace("9902", String.valueOf(TestSupport.closedPort()))
                .replace("4191", String.valueOf(TestSupport.closedPort())));
        assertTrue(out.contains("\napp\n"), out);
        // The fake starts in the background: the first polls may find nothing listening yet, then
        // 503 until it is ready; on a busy machine the tool may start after that, and see 200 at once.
        assertTrue(Pattern.compile("poll \\d+: HTTP (503|200)").matcher(out).find(), out);
        assertTrue(out.contains("/ready answered 2xx after "), out);
        assertTrue(out.contains("fake-envoy: generic POST /shutdown -> 200, quitting"), out);
        assertTrue(out.contains("fake-envoy: quit"), out);
    }

    /** The first ```bash block of the README after the text given. */
    static String readmeBashBlockAfter(String text) throws IOException {
        String readme = Files.readString(ROOT.resolve("README.md"));
        Matcher block = Pattern.compile(Pattern.quote(text) + ".*?```bash\n(.*?)```", Pattern.DOTALL).matcher(readme);
        assertTrue(block.find(), "README: a bash block after '" + text + "'");
        return block.group(1);
    }

    /** Runs a README block as bash in the clone (with set -e); returns its output, having checked it exits 0. */
    static String runLaptopCycle(String commands) throws Exception {
        Path log = Files.createTempFile("laptop-cycle", ".log");
        try {
            return runLaptopCycle(commands, log);
        } finally {
            Files.deleteIfExists(log);
        }
    }

    static String runLaptopCycle(String commands, Path log) throws Exception {
        ProcessBuilder pb = new ProcessBuilder("bash", "-c", "set -e\n" + commands)
                .directory(ROOT.toFile())
                .redirectErrorStream(true)
                .redirectOutput(log.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()));
        TestSupport.cleanEnvironment(pb);
        pb.environment().put("JBANG_NO_VERSION_CHECK", "true");
        // the tool SIGINTs every pilot-agent it sees (a loopback admin API, no Istio one): only the cycle's
        try (var ns = TestSupport.PidNamespace.create()) {
            Process p = ns.start(pb);
            try {
                assertTrue(p.waitFor(120, TimeUnit.SECONDS), "the cycle did not finish:\n" + TestSupport.read(log));
            } finally {
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly();
            }
            String out = TestSupport.read(log);
            assertEquals(0, p.exitValue(), out);
            return out;
        }
    }

    @org.junit.jupiter.api.Tag("launcher")
    @Test
    @ResourceLock(TestSupport.CPU)
    void theReadmesLaptopCycleRunsEndToEnd() throws Exception {
        // The three commands exactly as the README shows them, on a free port instead of 9901.
        String commands = readmeBashBlockAfter("## Try it on a laptop");
        assertTrue(commands.contains("9901"), commands);
        int port = TestSupport.closedPort();
        String out = runLaptopCycle(commands.replace("9901", String.valueOf(port)));
        assertTrue(out.contains("\napp\n"), out);
        // Each state in turn is DocsTests' laptop-envoy transcript (the fake started after the first
        // poll); here both start at once through JBang, and a slow start may find the fake LIVE.
        assertTrue(out.contains("envoy-preflight: LIVE after "), out);
        assertTrue(out.contains("fake-envoy: POST /quitquitquit -> 200, quitting"), out);
        assertTrue(out.contains("fake-envoy: quit"), out);
    }
}
