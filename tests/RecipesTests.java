import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;

import java.io.IOException;
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

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The recipes for workflow engines and mesh modes (examples/argo, tekton, airflow, spark and
 * kubernetes/any-mesh-job.yaml): each file's own settings, read from the file, run by the real
 * tool against fake sidecars, the manifest's loopback ports mapped to the fakes'.
 */
class RecipesTests {
    static final Path ROOT = TestSupport.repositoryRoot();
    static final Path JOB = ROOT.resolve("examples/docker/job.sh");
    /** The jar image's entrypoint (examples/docker/Dockerfile.jar), which the recipes name as their command. */
    static final String JAR_ENTRYPOINT = "/opt/envoy-preflight/entrypoint.sh";

    @TempDir
    Path dir;

    // --- Reading the files -------------------------------------------------------------------------

    @SuppressWarnings("unchecked")
    static Map<String, Object> yaml(String file) throws IOException {
        return (Map<String, Object>) new Yaml(new SafeConstructor(new LoaderOptions()))
                .load(Files.readString(ROOT.resolve(file)));
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> map(Map<String, Object> m, String... keys) {
        for (String key : keys) m = (Map<String, Object>) m.get(key);
        return m;
    }

    @SuppressWarnings("unchecked")
    static List<String> strings(Map<String, Object> m, String key) {
        List<String> list = (List<String>) m.get(key);
        return list == null ? List.of() : list;
    }

    /** A container's env list as a map, later entries winning (as Kubernetes merges them). */
    @SuppressWarnings("unchecked")
    static Map<String, String> env(Map<String, Object> container, Map<String, String> into) {
        List<Map<String, Object>> list = (List<Map<String, Object>>) container.get("env");
        if (list != null) list.forEach(e -> into.put((String) e.get("name"), String.valueOf(e.get("value"))));
        return into;
    }

    static Map<String, String> env(Map<String, Object> container) {
        return env(container, new LinkedHashMap<>());
    }

    /** The recipe's app command, its /app/job.sh being the example job of this repository. */
    static String[] app(List<String> args) {
        return args.stream().map(a -> a.equals("/app/job.sh") ? JOB.toString() : a).toArray(String[]::new);
    }

    static void assertTheJarImagesEntrypoint(List<String> command, String where) throws IOException {
        assertEquals(JAR_ENTRYPOINT, command.get(0), where);
        assertTrue(Files.readString(ROOT.resolve("examples/docker/Dockerfile.jar"))
                .contains("COPY examples/docker/entrypoint.sh " + JAR_ENTRYPOINT), "the jar image puts it there");
    }

    // --- The fakes --------------------------------------------------------------------------------

    /** A pod's sidecar ports served by one FakeEnvoy (admin, pilot-agent, generic), LIVE after 300 ms. */
    static final class Pod implements AutoCloseable {
        final FakeEnvoy fake;
        final Map<String, String> ports = new LinkedHashMap<>();

        Pod() throws IOException {
            // Not ready at once, so that the tool has to wait, as in a pod that just started.
            fake = FakeEnvoy.start(0, Duration.ofMillis(300)).withPilotAgent(0).withGenericSidecar(0);
        }

        /** Istio: Envoy's admin on 15000, pilot-agent's quit on 15020, its readiness on 15021. */
        static Pod istio() throws IOException {
            Pod pod = new Pod();
            pod.fake.overrideGeneric("/healthz/ready", exchange -> FakeEnvoy.reply(exchange,
                    pod.fake.state().equals("LIVE") ? 200 : 503, "text/plain", ""));
            pod.ports.put(":15000", ":" + pod.fake.url().getPort());
            pod.ports.put(":15020", ":" + pod.fake.pilotAgentUrl().getPort());
            pod.ports.put(":15021", ":" + pod.fake.genericUrl().getPort());
            return pod;
        }

        /** Linkerd's proxy: /ready and /shutdown on its admin port, 4191. */
        static Pod linkerd() throws IOException {
            Pod pod = new Pod();
            pod.ports.put(":4191", ":" + pod.fake.genericUrl().getPort());
            return pod;
        }

        /** The Cloud SQL Auth Proxy: /readiness on 9090, /quitquitquit on 9091 (answered, not obeyed). */
        static Pod cloudSqlProxy() throws IOException {
            Pod pod = new Pod();
            pod.fake.overrideGeneric("/readiness", exchange -> FakeEnvoy.reply(exchange,
                    pod.fake.state().equals("LIVE") ? 200 : 503, "text/plain", "ok"));
            pod.fake.overrideGeneric("/quitquitquit", exchange -> FakeEnvoy.reply(exchange, 200, "text/plain", "bye"));
            pod.ports.put(":9090", ":" + pod.fake.genericUrl().getPort());
            pod.ports.put(":9091", ":" + pod.fake.genericUrl().getPort());
            return pod;
        }

        /** The manifest's environment with its ports mapped to the fakes', for one run of the tool. */
        Map<String, String> mapped(Map<String, String> env) {
            Map<String, String> out = new LinkedHashMap<>();
            env.forEach((k, v) -> {
                for (var p : ports.entrySet()) v = v.replace(p.getKey(), p.getValue());
                out.put(k, v);
            });
            out.put("JOB_SECONDS", "0");
            // A fake that answers a quit but keeps listening must not cost the quit confirmation.
            out.put("ENVOY_PREFLIGHT_QUIT_CONFIRM_TIMEOUT", "0");
            return out;
        }

        /** Every request so far, each kind once, in order of first appearance. */
        List<String> seen() {
            return fake.requests().stream().map(Object::toString).distinct().toList();
        }

        List<String> posts() {
            return TestSupport.posts(fake);
        }

        @Override
        public void close() {
            fake.close();
        }
    }

    /** Runs the tool to its end: {exit code, stdout, stderr}. */
    static TestSupport.Run run(Map<String, String> env, String... app) throws Exception {
        var tool = TestSupport.Tool.start(env, app);
        try (tool) {
            int code = tool.exitCode();
            return new TestSupport.Run(code, tool.stdout(), tool.stderr());
        } finally {
            // Tool.start's folder of the two streams: nothing of a run is left behind.
            Files.deleteIfExists(tool.stdout);
            Files.deleteIfExists(tool.stderr);
            Files.deleteIfExists(tool.stdout.getParent());
        }
    }

    static final String[] FAILING_APP = {"sh", "-c", "echo failing; exit 3"};

    // --- Argo Workflows --------------------------------------------------------------------------

    @SuppressWarnings("unchecked")
    static Map<String, Object> onlyTemplatesContainer(Map<String, Object> workflow) {
        List<Map<String, Object>> templates = (List<Map<String, Object>>) map(workflow, "spec").get("templates");
        assertEquals(1, templates.size());
        return map(templates.get(0), "container");
    }

    static List<String> jsonArray(String json) {
        List<String> out = new ArrayList<>();
        JsonParser.parseString(json).getAsJsonArray().forEach(e -> out.add(e.getAsString()));
        return out;
    }

    @Test
    void theArgoIstioWorkflowWaitsForTheProxyAndLeavesItsEndToArgo() throws Exception {
        Map<String, Object> workflow = yaml("examples/argo/istio-workflow.yaml");
        assertEquals("Workflow", workflow.get("kind"));
        Map<String, Object> annotations = map(workflow, "spec", "podMetadata", "annotations");
        assertEquals("true", annotations.get("sidecar.istio.io/inject"));
        // Argo runs this in the istio-proxy container with kubectl exec: an array, as JSON
        assertEquals(List.of("pilot-agent", "request", "POST", "quitquitquit"),
                jsonArray((String) annotations.get("workflows.argoproj.io/kill-cmd-istio-proxy")));
        Map<String, Object> main = onlyTemplatesContainer(workflow);
        assertTheJarImagesEntrypoint(strings(main, "command"), "Argo's emissary needs the command spelled out");

        try (Pod pod = Pod.istio()) {
            TestSupport.Run ok = run(pod.mapped(env(main)), app(strings(main, "args")));
            assertEquals(0, ok.code(), ok.err());
            assertTrue(ok.out().contains("job: done"), ok.out());
            assertEquals(List.of(), pod.posts(), "nothing quit after a success");
            TestSupport.Run failed = run(pod.mapped(env(main)), FAILING_APP);
            assertEquals(3, failed.code(), "the step's own code, for Argo to see: " + failed.err());
            assertEquals(List.of("admin GET /server_info", "generic GET /healthz/ready"), pod.seen());
            assertEquals(List.of(), pod.posts(), "nothing quit after a failure");
        }
    }

    @Test
    void theArgoLinkerdWorkflowWaitsForTheProxyAndLeavesItsEndToLinkerdAwait() throws Exception {
        Map<String, Object> workflow = yaml("examples/argo/linkerd-workflow.yaml");
        Map<String, Object> annotations = map(workflow, "spec", "podMetadata", "annotations");
        assertEquals("enabled", annotations.get("linkerd.io/inject"));
        assertEquals("enabled", annotations.get("config.linkerd.io/proxy-admin-shutdown"),
                "linkerd-await --shutdown POSTs /shutdown, off by default");
        List<String> kill = jsonArray((String) annotations.get("workflows.argoproj.io/kill-cmd-linkerd-proxy"));
        assertEquals("/usr/lib/linkerd/linkerd-await", kill.get(0));
        // linkerd-await [OPTIONS] [CMD] [ARGS]: the option before the command it runs
        assertTrue(kill.indexOf("--shutdown") > 0 && kill.indexOf("--shutdown") < kill.indexOf("--"), kill.toString());
        Map<String, Object> main = onlyTemplatesContainer(workflow);
        assertTheJarImagesEntrypoint(strings(main, "command"), "Argo's emissary needs the command spelled out");

        try (Pod pod = Pod.linkerd()) {
            TestSupport.Run ok = run(pod.mapped(env(main)), app(strings(main, "args")));
            assertEquals(0, ok.code(), ok.err());
            assertEquals(List.of(), pod.posts(), "nothing quit after a success");
            TestSupport.Run failed = run(pod.mapped(env(main)), FAILING_APP);
            assertEquals(3, failed.code(), failed.err());
            assertEquals(List.of("generic GET /ready"), pod.seen());
            assertEquals(List.of(), pod.posts());
        }
    }

    // --- Tekton ------------------------------------------------------------------------------------

    /** A step as Tekton runs it: the stepTemplate's fields, the step's own winning (env by name). */
    record Step(String name, List<String> command, List<String> args, Map<String, String> env) {}

    @SuppressWarnings("unchecked")
    static List<Step> steps(Map<String, Object> task) {
        Map<String, Object> template = map(task, "spec", "stepTemplate");
        List<Step> steps = new ArrayList<>();
        for (Map<String, Object> step : (List<Map<String, Object>>) map(task, "spec").get("steps")) {
            List<String> command = strings(step.containsKey("command") ? step : template, "command");
            steps.add(new Step((String) step.get("name"), command, strings(step, "args"), env(step, env(template))));
        }
        return steps;
    }

    @Test
    void theTektonTasksStepsAllWaitAndOnlyTheLastQuits() throws Exception {
        Map<String, Object> task = yaml("examples/tekton/istio-task.yaml");
        assertEquals("Task", task.get("kind"));
        List<Step> steps = steps(task);
        assertEquals(3, steps.size());
        try (Pod pod = Pod.istio()) {
            // One pod, one proxy: the steps run one after another against the same fakes.
            for (Step step : steps) {
                assertTheJarImagesEntrypoint(step.command(), step.name());
                boolean last = step == steps.get(2);
                TestSupport.Run r = run(pod.mapped(step.env()), app(step.args()));
                assertEquals(0, r.code(), step.name() + ": " + r.err());
                assertTrue(r.out().contains("job: done"), step.name() + ": " + r.out());
                assertTrue(r.err().contains("/healthz/ready"), step.name() + " waits: " + r.err());
                assertEquals(last ? List.of("pilot-agent POST /quitquitquit") : List.of(), pod.posts(), step.name());
            }
            assertTrue(pod.fake.awaitQuit(Duration.ofSeconds(5)), "the proxy stopped after the last step");
        }
    }

    @Test
    void aFailedTektonStepLeavesTheProxyToTheStepsAfterIt() throws Exception {
        // A failure of an early step quits nothing: Tekton then skips the later steps and stops
        // the sidecars itself (the Task's comment says since which version).
        Step first = steps(yaml("examples/tekton/istio-task.yaml")).get(0);
        try (Pod pod = Pod.istio()) {
            TestSupport.Run r = run(pod.mapped(first.env()), FAILING_APP);
            assertEquals(3, r.code(), r.err());
            assertEquals(List.of(), pod.posts());
        }
    }

    // --- Airflow -----------------------------------------------------------------------------------

    static final Path DAG = ROOT.resolve("examples/airflow/cloud_sql_proxy_dag.py");

    /** A Python dict literal of string keys and values, as the DAG writes it (one entry a line). */
    static Map<String, String> pythonDict(String source, String name) {
        Matcher block = Pattern.compile("(?ms)^" + name + " = \\{\\n(.*?)^}").matcher(source);
        assertTrue(block.find(), "the DAG assigns " + name);
        Map<String, String> out = new LinkedHashMap<>();
        Matcher entry = Pattern.compile("\"([^\"]*)\": \"([^\"]*)\",").matcher(block.group(1));
        while (entry.find()) out.put(entry.group(1), entry.group(2));
        return out;
    }

    /** A Python list literal of strings, assigned to name or passed as keyword name=. */
    static List<String> pythonList(String source, String name) {
        Matcher block = Pattern.compile("(?s)\\b" + name + " ?= ?\\[(.*?)]").matcher(source);
        assertTrue(block.find(), "the DAG gives " + name);
        List<String> out = new ArrayList<>();
        Matcher item = Pattern.compile("\"([^\"]*)\"").matcher(block.group(1));
        while (item.find()) out.add(item.group(1));
        return out;
    }

    @Test
    void theAirflowDagIsPythonThatCompiles() throws Exception {
        ProcessBuilder pb = new ProcessBuilder("python3", "-c",
                "import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])", DAG.toString())
                .redirectErrorStream(true);
        Process p;
        try {
            p = pb.start();
        } catch (IOException e) {
            org.junit.jupiter.api.Assumptions.abort("no python3 here: " + e.getMessage());
            return;
        }
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), out);
    }

    @Test
    void theAirflowDagsBaseContainerWaitsForTheCloudSqlProxyAndQuitsItWhateverTheJobsEnd() throws Exception {
        String source = Files.readString(DAG);
        Map<String, String> env = pythonDict(source, "PREFLIGHT_ENV");
        List<String> proxyArgs = pythonList(source, "CLOUD_SQL_PROXY_ARGS");
        assertTrue(source.contains("env_vars=PREFLIGHT_ENV") && source.contains("args=CLOUD_SQL_PROXY_ARGS"), source);
        for (String flag : List.of("--health-check", "--quitquitquit", "--exit-zero-on-sigterm")) {
            assertTrue(proxyArgs.contains(flag), flag + " in " + proxyArgs);
        }
        // The tool polls and quits on the ports the proxy is started with.
        assertTrue(proxyArgs.contains("--http-port=9090"), proxyArgs.toString());
        assertTrue(env.get("GENERIC_READY_ENDPOINTS").startsWith("http://127.0.0.1:9090/"), env.toString());
        assertTrue(proxyArgs.contains("--admin-port=9091"), proxyArgs.toString());
        assertTrue(env.get("GENERIC_QUIT_ENDPOINTS").startsWith("http://127.0.0.1:9091/"), env.toString());
        List<String> cmds = pythonList(source, "cmds");
        assertTheJarImagesEntrypoint(cmds, "the operator's cmds");
        // The base container is named by the operator; the sidecar beside it in the template.
        assertTrue(source.contains("k8s.V1Container(name=\"base\")"), "the template's first container is base");

        try (Pod pod = Pod.cloudSqlProxy()) {
            TestSupport.Run ok = run(pod.mapped(env), app(pythonList(source, "arguments")));
            assertEquals(0, ok.code(), ok.err());
            assertTrue(ok.out().contains("job: done"), ok.out());
            assertEquals(List.of("generic GET /readiness", "generic POST /quitquitquit"), pod.seen());
            // A failed job must end its pod too, or the task waits for it forever.
            TestSupport.Run failed = run(pod.mapped(env), FAILING_APP);
            assertEquals(3, failed.code(), failed.err());
            assertEquals(List.of("generic POST /quitquitquit", "generic POST /quitquitquit"), pod.posts());
        }
    }

    // --- Spark ---------------------------------------------------------------------------------------

    /** spark-defaults.conf: KEY whitespace VALUE lines, comments left out. */
    static Map<String, String> sparkDefaults() throws IOException {
        Map<String, String> conf = new LinkedHashMap<>();
        for (String line : Files.readAllLines(ROOT.resolve("examples/spark/spark-defaults.conf"))) {
            if (line.isBlank() || line.startsWith("#")) continue;
            String[] kv = line.trim().split("\\s+", 2);
            conf.put(kv[0], kv[1]);
        }
        return conf;
    }

    /** Stands for Spark's /opt/entrypoint.sh: records its arguments, exits with SPARK_FAKE_EXIT. */
    Path fakeSparkEntrypoint() throws IOException {
        Path script = dir.resolve("spark-entrypoint.sh");
        Files.writeString(script, String.join("\n", "#!/bin/sh",
                "for a in \"$@\"; do echo \"$a\"; done > '" + dir.resolve("args") + "'",
                "exit \"${SPARK_FAKE_EXIT:-0}\"", ""));
        Files.setPosixFilePermissions(script, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
        return script;
    }

    @Test
    @SuppressWarnings("unchecked")
    void theSparkPodTemplateWrapsTheImagesEntrypointForTheDriverAndTheExecutors() throws Exception {
        Map<String, Object> template = yaml("examples/spark/pod-template.yaml");
        assertEquals("true", map(template, "metadata", "annotations").get("sidecar.istio.io/inject"));
        Map<String, Object> spark = ((List<Map<String, Object>>) map(template, "spec").get("containers")).get(0);
        Map<String, String> conf = sparkDefaults();
        for (String role : List.of("driver", "executor")) {
            assertTrue(conf.get("spark.kubernetes." + role + ".podTemplateFile").endsWith("/pod-template.yaml"), role);
            assertEquals(spark.get("name"), conf.get("spark.kubernetes." + role + ".podTemplateContainerName"), role);
        }
        List<String> command = strings(spark, "command");
        assertEquals(List.of(JAR_ENTRYPOINT, "/opt/entrypoint.sh"), command, "the tool, then Spark's own entrypoint");
        assertFalse(spark.containsKey("args"), "Spark sets the args (driver ..., executor)");
        String dockerfile = Files.readString(ROOT.resolve("examples/spark/Dockerfile"));
        assertTrue(dockerfile.contains("COPY examples/docker/entrypoint.sh " + JAR_ENTRYPOINT), dockerfile);
        assertTrue(dockerfile.contains("/opt/envoy-preflight/envoy-preflight.jar"), "where entrypoint.sh looks");
        Matcher options = Pattern.compile("PREFLIGHT_JAVA_OPTIONS=\"([^\"]*)\"").matcher(dockerfile);
        assertTrue(options.find());
        assertEquals(TestSupport.RUNTIME_OPTIONS, List.of(options.group(1).split(" ")), "the script's JVM options");

        Path entrypoint = fakeSparkEntrypoint();
        List<String> driverArgs = List.of("driver", "--properties-file", "/opt/spark/conf/spark.properties",
                "--class", "org.example.Report", "spark-internal");
        try (Pod pod = Pod.istio()) {
            List<String> app = new ArrayList<>(List.of(entrypoint.toString()));
            app.addAll(driverArgs);
            TestSupport.Run driver = run(pod.mapped(env(spark)), app.toArray(String[]::new));
            assertEquals(0, driver.code(), driver.err());
            assertEquals(String.join("\n", driverArgs) + "\n", TestSupport.read(dir.resolve("args")),
                    "Spark's args reach its entrypoint unchanged");
            assertEquals(List.of("admin GET /server_info", "generic GET /healthz/ready",
                            "pilot-agent POST /quitquitquit"),
                    pod.seen());
        }
        try (Pod pod = Pod.istio()) {
            Map<String, String> env = pod.mapped(env(spark));
            env.put("SPARK_FAKE_EXIT", "1");
            TestSupport.Run executor = run(env, entrypoint.toString(), "executor");
            assertEquals(1, executor.code(), "the JVM's code: " + executor.err());
            assertEquals(List.of("pilot-agent POST /quitquitquit"), pod.posts(), "quit when the executor fails too");
        }
    }

    // --- One Job for any Istio mode --------------------------------------------------------------------

    @SuppressWarnings("unchecked")
    static Map<String, Object> anyMeshContainer() throws IOException {
        Map<String, Object> job = yaml("examples/kubernetes/any-mesh-job.yaml");
        return ((List<Map<String, Object>>) map(job, "spec", "template", "spec").get("containers")).get(0);
    }

    /** The environment Kubernetes gives the container: envFrom's ConfigMap (if any) first, env over it. */
    @SuppressWarnings("unchecked")
    static Map<String, String> anyMeshEnv(boolean nativeNamespace) throws IOException {
        Map<String, Object> container = anyMeshContainer();
        Map<String, String> env = new LinkedHashMap<>();
        List<Map<String, Object>> from = (List<Map<String, Object>>) container.get("envFrom");
        Map<String, Object> ref = map(from.get(0), "configMapRef");
        assertEquals(true, ref.get("optional"), "namespaces without the ConfigMap still run the Job");
        if (nativeNamespace) {
            Map<String, Object> configMap = yaml("examples/kubernetes/any-mesh-native-configmap.yaml");
            assertEquals(ref.get("name"), map(configMap, "metadata").get("name"));
            map(configMap, "data").forEach((k, v) -> env.put(k, String.valueOf(v)));
        }
        return env(container, env);
    }

    @Test
    void theAnyMeshJobWaitsForAndQuitsAClassicSidecar() throws Exception {
        Map<String, String> env = anyMeshEnv(false);
        try (Pod pod = Pod.istio()) {
            TestSupport.Run r = run(pod.mapped(env), app(strings(anyMeshContainer(), "args")));
            assertEquals(0, r.code(), r.err());
            assertEquals(List.of("admin GET /server_info", "generic GET /healthz/ready",
                            "pilot-agent POST /quitquitquit"),
                    pod.seen());
        }
    }

    @Test
    void theAnyMeshJobWaitsForANativeSidecarAndLeavesItToKubernetes() throws Exception {
        Map<String, String> env = anyMeshEnv(true);
        assertEquals("true", env.get("NEVER_KILL_ISTIO"));
        try (Pod pod = Pod.istio()) {
            TestSupport.Run r = run(pod.mapped(env), app(strings(anyMeshContainer(), "args")));
            assertEquals(0, r.code(), r.err());
            assertEquals(List.of("admin GET /server_info", "generic GET /healthz/ready"), pod.seen());
            assertEquals(List.of(), pod.posts(), "a quit native sidecar is only restarted");
        }
    }

    @Test
    void theAnyMeshJobRunsWithoutASidecarAfterSidecarAbsentAfter() throws Exception {
        // Ambient mode or no mesh: nothing listens on any of the proxy's ports.
        Map<String, String> env = new LinkedHashMap<>();
        for (var e : anyMeshEnv(false).entrySet()) {
            String v = e.getValue();
            for (String port : List.of(":15000", ":15020", ":15021")) {
                v = v.replace(port, ":" + TestSupport.closedPort());
            }
            env.put(e.getKey(), v);
        }
        env.put("JOB_SECONDS", "0");
        env.put("ENVOY_PREFLIGHT_LOG_FORMAT", "json");
        Duration absentAfter = Duration.ofSeconds(Long.parseLong(env.get("SIDECAR_ABSENT_AFTER").replace("s", "")));
        TestSupport.Run r = run(env, app(strings(anyMeshContainer(), "args")));
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("job: done"), r.out());
        List<JsonObject> events = TestSupport.events(r.err());
        JsonObject absent = TestSupport.event(r.err(), "absent");
        assertTrue(absent.get("ms").getAsLong() >= absentAfter.toMillis(), absent.toString());
        assertTrue(TestSupport.kinds(events).indexOf("absent") < TestSupport.kinds(events).indexOf("app-start"),
                TestSupport.kinds(events).toString());
        assertFalse(TestSupport.any(events, "quit", o -> o.has("status")), "no quit request answered: " + r.err());
    }

    // --- Named sidecars: vault-agent, consul-dataplane (presets of the lead's) ---------------------------

    @Test
    void theNamedSidecarVaultAgentQuitsTheInjectedAgentThroughItsQuitEndpoint() throws Exception {
        // vault-k8s: agent-enable-quit opens the agent's listener on 127.0.0.1:8200 (its
        // agent-cache-listener-port default) with the quit API; Vault Agent: POST /agent/v1/quit.
        try (var agent = TestSupport.Recorder.onDefaultPort(8200)) {
            TestSupport.Run r = run(TestSupport.env("ENVOY_PREFLIGHT_SIDECARS", "vault-agent",
                    "ENVOY_PREFLIGHT_QUIT_CONFIRM_TIMEOUT", "0"), "sh", "-c", "exit 0");
            assertEquals(0, r.code(), r.err());
            assertEquals(List.of("POST /agent/v1/quit"), agent.seen());
        }
    }

    @Test
    void theNamedSidecarConsulDataplaneWaitsForEnvoyAndAsksForAGracefulShutdown() throws Exception {
        // consul-dataplane: Envoy's admin on 127.0.0.1:19000 (/ready: 200 when LIVE); consul-k8s
        // starts its lifecycle server on 127.0.0.1:20600 with /graceful_shutdown.
        try (var envoy = TestSupport.Recorder.onDefaultPort(19000);
             var lifecycle = TestSupport.Recorder.onDefaultPort(20600)) {
            TestSupport.Run r = run(TestSupport.env("ENVOY_PREFLIGHT_SIDECARS", "consul-dataplane",
                    "ENVOY_PREFLIGHT_QUIT_CONFIRM_TIMEOUT", "0"), "sh", "-c", "exit 0");
            assertEquals(0, r.code(), r.err());
            assertEquals(List.of("GET /ready"), envoy.seen().stream().distinct().toList());
            assertEquals(List.of("POST /graceful_shutdown"), lifecycle.seen());
        }
    }
}
