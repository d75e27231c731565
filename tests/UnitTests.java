import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The pure parts: parsing, judgements, the backoff schedule and the quit plan. */
@org.junit.jupiter.api.Tag("fast")
class UnitTests {

    @Nested
    class Booleans {
        @ParameterizedTest
        @CsvSource({"true,true", "TRUE,true", "True,true", "false,false", "FALSE,false", "fAlSe,false"})
        void trueAndFalseInAnyCase(String raw, boolean expected) {
            assertEquals(expected, EnvoyPreflight.Setting.bool(raw));
        }

        @ParameterizedTest
        @ValueSource(strings = {"yes", "no", "1", "0", "on", " true", "true ", "t"})
        void anythingElseIsRejected(String raw) {
            assertThrows(IllegalArgumentException.class, () -> EnvoyPreflight.Setting.bool(raw));
        }
    }

    @Nested
    class Durations {
        @ParameterizedTest
        @CsvSource({"500ms,500", "30s,30000", "2m,120000", "1h30m,5400000", "1.5s,1500", "1m30s,90000",
                "10,10000", "0.25,250", "0,0", "0s,0", "250000us,250", "3000000ns,3", "2h,7200000",
                ".5s,500", "1\u00b5s500ms,500"})
        void goSyntaxAndBareSeconds(String raw, long millis) {
            assertEquals(millis, EnvoyPreflight.Setting.duration(raw).toMillis());
        }

        @ParameterizedTest
        @ValueSource(strings = {"-5s", "-1", "abc", "5 s", "5x", "s", "1h-30m", " 5s", "5s ", "1e3",
                "99999999999999999h", "5S", "1..5s"})
        void garbageAndNegativeAreRejected(String raw) {
            assertThrows(IllegalArgumentException.class, () -> EnvoyPreflight.Setting.duration(raw));
        }

        @Test
        void zeroIsNotATimeLimit() {
            assertThrows(IllegalArgumentException.class, () -> EnvoyPreflight.Setting.positiveDuration("0s"));
            assertEquals(Duration.ofMillis(1), EnvoyPreflight.Setting.positiveDuration("1ms"));
        }

        @ParameterizedTest
        @CsvSource({"0,0", "250,250ms", "1500,1500ms", "5000,5s", "90000,1m30s", "5400000,1h30m", "3600000,1h"})
        void formatsTheWayTheyAreWritten(long millis, String expected) {
            assertEquals(expected, EnvoyPreflight.Log.format(Duration.ofMillis(millis)));
        }
    }

    @Nested
    class Urls {
        @ParameterizedTest
        @ValueSource(strings = {"http://127.0.0.1:15000", "https://envoy.local", "http://[::1]:15000/",
                "http://localhost:15000/admin/", "HTTP://127.0.0.1:1"})
        void httpAndHttpsWithAHostAreAccepted(String raw) {
            assertEquals(raw, EnvoyPreflight.Setting.baseUrl(raw).toString());
        }

        @ParameterizedTest
        @ValueSource(strings = {"ftp://127.0.0.1", "127.0.0.1:15000", "http://", "http:///path",
                "notaurl^^", "http://127.0.0.1:15000/a b", "http://exa mple.com", "http://x/#frag",
                "file:///etc/passwd", "localhost:15000"})
        void otherValuesAreRejected(String raw) {
            assertThrows(IllegalArgumentException.class, () -> EnvoyPreflight.Setting.baseUrl(raw));
        }

        @Test
        void aBaseUrlTakesNoQuery() {
            assertThrows(IllegalArgumentException.class, () -> EnvoyPreflight.Setting.baseUrl("http://h/?a=b"));
            assertEquals("http://h/drain?a=b", EnvoyPreflight.Setting.url("http://h/drain?a=b").toString());
        }

        @Test
        void csvSkipsBlanksAndSpacesAndKeepsOrder() {
            List<URI> uris = EnvoyPreflight.Setting.list(" http://a:1/x , ,http://b:2/y,,  ", EnvoyPreflight.Setting::url);
            assertEquals(List.of(URI.create("http://a:1/x"), URI.create("http://b:2/y")), uris);
            assertEquals(List.of(), EnvoyPreflight.Setting.list(" , ", EnvoyPreflight.Setting::url));
        }

        @Test
        void everyListEntryIsStrippedOfWhitespaceBeyondTheSeparators() {
            assertEquals(List.of(EnvoyPreflight.Config.Sidecar.LINKERD),
                    EnvoyPreflight.Setting.list("linkerd\u2003", EnvoyPreflight.Config.Sidecar::named));
            assertEquals("foo:TERM", EnvoyPreflight.Setting.list("foo\u001f", EnvoyPreflight.Plan.Stop::of).get(0)
                    .toString());
            assertEquals(List.of(), EnvoyPreflight.Setting.list("\u2003", EnvoyPreflight.Setting::url));
        }

        @Test
        void csvWithOneBadEntryNamesThatEntry() {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> EnvoyPreflight.Setting.list("http://a:1/x,ftp://b/y,http://c/z", EnvoyPreflight.Setting::url));
            assertTrue(e.getMessage().startsWith("entry 2: "), e.getMessage()); // by place: a comma may split a password
        }

        @ParameterizedTest
        @CsvSource({"http://h:1,quitquitquit,http://h:1/quitquitquit",
                "http://h:1/,quitquitquit,http://h:1/quitquitquit",
                "http://h:1//,quitquitquit,http://h:1/quitquitquit",
                "http://h:1/agent/,quitquitquit,http://h:1/agent/quitquitquit",
                "http://u:p@h:1,server_info,http://u:p@h:1/server_info"})
        void pathsAreAppendedWhateverSlashesTheBaseEndsWith(String base, String path, String expected) {
            assertEquals(expected, EnvoyPreflight.Http.resolve(URI.create(base), path).toString());
        }

        @ParameterizedTest
        @CsvSource({"http://localhost:15000,true", "http://LOCALHOST:1,true", "http://localhost.:1,true",
                "http://127.0.0.1:15000,true", "http://127.255.3.4,true", "http://[::1]:15000,true",
                "http://[0:0:0:0:0:0:0:1]:1,true", "http://[::ffff:127.0.0.1]:1,true",
                "http://128.0.0.1,false", "http://10.0.0.1,false", "http://127.0.0.1.nip.io,false",
                "http://localhost.evil.com,false", "http://mylocalhost,false", "http://[::2],false",
                "http://127.0.0.256,false", "http://envoy:15000,false", "http://0.0.0.0,false",
                "http://evil.com/127.0.0.1,false", "http://127.0.0.1@evil.com,false"})
        void loopbackIsJudgedOnTheParsedHost(String raw, boolean loopback) {
            assertEquals(loopback, EnvoyPreflight.Http.isLoopback(URI.create(raw)));
        }
    }

    @Nested
    class Redaction {
        @ParameterizedTest
        @CsvSource({"http://user:secret@h:1/x,http://***@h:1/x",
                "ENVOY_ADMIN_API: bad: 'ftp://a:b@c',ENVOY_ADMIN_API: bad: 'ftp://***@c'",
                "http://h:1/x?mail=a@b,http://***@b", // free text can't tell a query's @ from a password's
                "'http://u:p/x?#@h:1/q' and http://v:w@i/,'http://***@h:1/q' and http://***@i/",
                "no url here,no url here"})
        void credentialsNeverShow(String in, String out) {
            assertEquals(out, EnvoyPreflight.Log.redact(in));
        }
    }

    @Nested
    class ServerInfoState {
        private String state(String json) throws IOException {
            return EnvoyPreflight.Wait.ServerInfo.state(
                    new ByteArrayInputStream(json.getBytes(StandardCharsets.UTF_8)));
        }

        @Test
        void readsTheTopLevelStateWhereverItStands() throws IOException {
            assertEquals("LIVE", state("{\"state\":\"LIVE\"}"));
            assertEquals("DRAINING", state("{\"version\":\"x\",\"uptime\":{\"a\":[1,2]},\"state\":\"DRAINING\"}"));
            assertEquals("INITIALIZING", state(FakeEnvoy.serverInfo("INITIALIZING")));
        }

        @Test
        void nestedStatesDoNotCount() throws IOException {
            assertNull(state("{\"node\":{\"metadata\":{\"state\":\"LIVE\"}}}"));
            assertEquals("PRE_INITIALIZING",
                    state("{\"node\":{\"state\":\"LIVE\"},\"state\":\"PRE_INITIALIZING\",\"x\":\"state: LIVE\"}"));
        }

        @Test
        void aStateThatIsNotAStringIsNoState() throws IOException {
            assertNull(state("{\"state\":1}"));
            assertNull(state("{\"state\":{\"name\":\"LIVE\"}}"));
        }

        @Test
        void caseMatters() throws IOException {
            assertEquals("live", state("{\"state\":\"live\"}"));
        }

        @ParameterizedTest
        @org.junit.jupiter.params.provider.CsvSource(delimiter = '|', value = {
                "''|HTTP 200 but the JSON object ends early", "'  '|HTTP 200 but the JSON object ends early",
                "'{\"state\":\"LIVE\"'|HTTP 200 but the JSON object ends early",
                "'['|HTTP 200 but not a JSON object", "'\"LIVE\"'|HTTP 200 but not a JSON object",
                "'{state:LIVE}'|HTTP 200 but not a JSON object", "'{} x'|HTTP 200 but not a JSON object"})
        void anUnusableBodyIsSaidInOurWords(String body, String said) {
            assertEquals(said, assertThrows(IOException.class, () -> state(body)).getMessage());
        }

        @Test
        void atMost1MiBIsRead() throws IOException {
            String padded = "{\"state\":\"LIVE\",\"log\":\"" + "x".repeat((1 << 20) - 25) + "\"}";
            assertEquals(1 << 20, padded.length());
            assertEquals("LIVE", state(padded));
            IOException tooLong = assertThrows(IOException.class, () -> state(padded + " "));
            assertEquals("HTTP 200 but the body is longer than 1 MiB", tooLong.getMessage());
        }

        @ParameterizedTest
        @ValueSource(strings = {"LIVE", "", "[\"state\",\"LIVE\"]", "{\"state\":\"LIVE\"", "{\"state\":\"LIVE\"} x",
                "{\"state\" \"LIVE\"}", "<html>LIVE</html>", "\"LIVE\"", "{state:LIVE}"})
        void anythingButAJsonObjectIsRejected(String body) {
            assertThrows(IOException.class, () -> state(body));
        }
    }

    @Nested
    class BackoffSchedule {
        private List<Long> schedule(double random, Duration cap, int n) {
            EnvoyPreflight.Wait.Backoff b = new EnvoyPreflight.Wait.Backoff(cap, () -> random);
            List<Long> ms = new ArrayList<>();
            for (int i = 0; i < n; i++) ms.add(b.next().toMillis());
            return ms;
        }

        @Test
        void startsAt100msDoublesAndStopsAtTheCap() {
            assertEquals(List.of(100L, 200L, 250L, 250L, 250L), schedule(0.0, Duration.ofMillis(250), 5));
        }

        @Test
        void jitterOnlyShortensByUpToAFifth() {
            assertEquals(List.of(80L, 160L, 200L, 200L), schedule(1.0, Duration.ofMillis(250), 4));
        }

        @Test
        void neverAboveTheCapHoweverLongItRuns() {
            EnvoyPreflight.Wait.Backoff b = new EnvoyPreflight.Wait.Backoff(Duration.ofMillis(250), Math::random);
            for (int i = 0; i < 10_000; i++) {
                long ms = b.next().toMillis();
                assertTrue(ms <= 250 && ms >= 64, "pause " + ms + " ms");
            }
        }

        @Test
        void aLowCapIsHonouredFromTheFirstPause() {
            assertEquals(List.of(5L, 5L), schedule(0.0, Duration.ofMillis(5), 2));
        }
    }

    @Nested
    class QuitPlan {
        private List<EnvoyPreflight.Plan.Step> steps(int code, String... env) throws Exception {
            return EnvoyPreflight.Plan.of(TestSupport.config(TestSupport.env(env)), code, false).steps();
        }

        private EnvoyPreflight.Plan plan(int code, String... env) throws Exception {
            return EnvoyPreflight.Plan.of(TestSupport.config(TestSupport.env(env)), code, false);
        }

        private EnvoyPreflight.Plan.Post post(String url) {
            return new EnvoyPreflight.Plan.Post(URI.create(url));
        }

        /** The pkill step: SIGINT pilot-agent, else POST the admin API's /quitquitquit. */
        private EnvoyPreflight.Plan.Step pkill(String admin) {
            return new EnvoyPreflight.Plan.Fallback(new EnvoyPreflight.Plan.SignalAll("pilot-agent", "INT"),
                    post(admin + "/quitquitquit"));
        }

        @Test
        void plainEnvoyIsStoppedThroughPkillElseTheAdminApi() throws Exception {
            assertEquals(List.of(pkill("http://127.0.0.1:9901")), steps(0, "ENVOY_ADMIN_API", "http://127.0.0.1:9901"));
        }

        @Test
        void onIstiosAdminPortWithoutTheIstioApiPilotAgentIsAskedBeforeEnvoy() throws Exception {
            var chain = new EnvoyPreflight.Plan.Fallback(new EnvoyPreflight.Plan.Fallback(
                    new EnvoyPreflight.Plan.SignalAll("pilot-agent", "INT"), post("http://127.0.0.1:15020/quitquitquit")),
                    post("http://127.0.0.1:15000/quitquitquit"));
            assertEquals(List.of(chain), steps(0, "ENVOY_ADMIN_API", "http://127.0.0.1:15000"));
            assertEquals("SIGINT pilot-agent, else POST http://127.0.0.1:15020/quitquitquit, else POST "
                    + "http://127.0.0.1:15000/quitquitquit", chain.describe());
            // the admin host is kept, credentials are not
            assertEquals(List.of(new EnvoyPreflight.Plan.Fallback(new EnvoyPreflight.Plan.Fallback(
                            new EnvoyPreflight.Plan.SignalAll("pilot-agent", "INT"), post("http://[::1]:15020/quitquitquit")),
                            post("http://u:p@[::1]:15000/quitquitquit"))),
                    steps(0, "ENVOY_ADMIN_API", "http://u:p@[::1]:15000"));
            // with the Istio API, its fallback is today's pkill step
            assertEquals(List.of(new EnvoyPreflight.Plan.Fallback(post("http://127.0.0.1:15020/quitquitquit"),
                            pkill("http://127.0.0.1:15000"))),
                    steps(0, "ENVOY_ADMIN_API", "http://127.0.0.1:15000", "ISTIO_QUIT_API", "http://127.0.0.1:15020",
                            "ISTIO_FALLBACK_PKILL", "true"));
        }

        @Test
        void withoutAnAdminApiOnlyTheGenericEndpointsAreQuit() throws Exception {
            assertEquals(List.of(post("http://127.0.0.1:4191/shutdown")),
                    steps(1, "GENERIC_QUIT_ENDPOINTS", "http://127.0.0.1:4191/shutdown", "ISTIO_QUIT_API", "http://127.0.0.1:15020"));
            assertEquals(List.of(), steps(0, "GENERIC_QUIT_ENDPOINTS", "http://127.0.0.1:4191/shutdown",
                    "NEVER_KILL_ISTIO", "true"));
            assertEquals(List.of(), steps(1, "GENERIC_QUIT_ENDPOINTS", "http://127.0.0.1:4191/shutdown",
                    "NEVER_KILL_ISTIO_ON_FAILURE", "true"));
        }

        @Test
        void genericQuitOnlyPostsNothingElse() throws Exception {
            String[] istio = {"ENVOY_ADMIN_API", "http://127.0.0.1:15000", "ISTIO_QUIT_API", "http://127.0.0.1:15020",
                    "GENERIC_QUIT_ONLY", "true"};
            assertEquals(List.of(post("http://127.0.0.1:1/drain")),
                    steps(0, concat(istio, "GENERIC_QUIT_ENDPOINTS", "http://127.0.0.1:1/drain")));
            assertEquals(List.of(), steps(0, istio));
            assertTrue(plan(0, istio).nothingBecause().contains("generic-quit-only"), plan(0, istio).nothingBecause());
        }

        @Test
        void envoyKillApiReplacesTheAdminQuitWhereverItAppears() throws Exception {
            String kill = "http://127.0.0.1:9901/quitquitquit?drain=1";
            assertEquals(List.of(new EnvoyPreflight.Plan.Fallback(new EnvoyPreflight.Plan.SignalAll("pilot-agent", "INT"),
                    post(kill))), steps(0, "ENVOY_ADMIN_API", "http://127.0.0.1:9901", "ENVOY_KILL_API", kill));
            assertEquals(List.of(new EnvoyPreflight.Plan.Fallback(new EnvoyPreflight.Plan.Fallback(
                            new EnvoyPreflight.Plan.SignalAll("pilot-agent", "INT"), post("http://127.0.0.1:15020/quitquitquit")),
                            post(kill))),
                    steps(0, "ENVOY_ADMIN_API", "http://127.0.0.1:15000", "ENVOY_KILL_API", kill));
        }

        @Test
        void useIstioEndpointFillsOnlyWhatIsUnset() throws Exception {
            assertEquals(List.of(post("http://127.0.0.1:15020/quitquitquit")), steps(0, "USE_ISTIO_ENDPOINT", "true"));
            var c = TestSupport.config(TestSupport.env("USE_ISTIO_ENDPOINT", "true", "ENVOY_ADMIN_API", "http://127.0.0.1:9901"));
            assertEquals(URI.create("http://127.0.0.1:9901"), c.url(EnvoyPreflight.Setting.ADMIN_API));
            assertEquals(URI.create("http://127.0.0.1:15020"), c.url(EnvoyPreflight.Setting.ISTIO_QUIT_API));
            assertTrue(c.shouldWait());
            assertFalse(TestSupport.config(TestSupport.env("USE_ISTIO_ENDPOINT", "false")).shouldWait());
        }

        @Test
        void genericEndpointsComeFirstInOrderThenIstio() throws Exception {
            assertEquals(List.of(post("http://127.0.0.1:1/a"), post("http://127.0.0.1:2/b"),
                            post("http://127.0.0.1:15020/quitquitquit")),
                    steps(0, "ENVOY_ADMIN_API", "http://127.0.0.1:15000", "ISTIO_QUIT_API", "http://127.0.0.1:15020/",
                            "GENERIC_QUIT_ENDPOINTS", "http://127.0.0.1:1/a, http://127.0.0.1:2/b"));
        }

        @Test
        void istioFallsBackToThePkillStepWhenAsked() throws Exception {
            assertEquals(List.of(new EnvoyPreflight.Plan.Fallback(post("http://127.0.0.1:15020/quitquitquit"),
                            pkill("http://localhost:15000"))),
                    steps(0, "ENVOY_ADMIN_API", "http://localhost:15000", "ISTIO_QUIT_API", "http://127.0.0.1:15020",
                            "ISTIO_FALLBACK_PKILL", "true"));
        }

        @Test
        void aFallbackChainReadsAsOneLineAndANestedChainIsSetApart() {
            var chain = new EnvoyPreflight.Plan.Fallback(new EnvoyPreflight.Plan.Fallback(
                    new EnvoyPreflight.Plan.SignalAll("pilot-agent", "INT"), post("http://h:2/q")), post("http://h:1/q"));
            assertEquals("SIGINT pilot-agent, else POST http://h:2/q, else POST http://h:1/q", chain.describe());
            assertEquals("POST http://h:3/q; if that fails: SIGINT pilot-agent, else POST http://h:1/quitquitquit",
                    new EnvoyPreflight.Plan.Fallback(post("http://h:3/q"), pkill("http://h:1")).describe());
        }

        @Test
        void nothingWithoutALoopbackAdminApi() throws Exception {
            assertEquals(List.of(), steps(0));
            assertTrue(plan(0).nothingBecause().startsWith("no admin API"), plan(0).nothingBecause());
            var remote = plan(0, "ENVOY_ADMIN_API", "http://envoy.example:15000", "ISTIO_QUIT_API", "http://127.0.0.1:15020");
            assertEquals(List.of(), remote.steps());
            assertTrue(remote.nothingBecause().contains("not loopback"), remote.nothingBecause());
        }

        @Test
        void neverKillSwitches() throws Exception {
            String[] base = {"ENVOY_ADMIN_API", "http://127.0.0.1:15000", "ISTIO_QUIT_API", "http://127.0.0.1:15020"};
            assertEquals(List.of(), steps(0, concat(base, "NEVER_KILL_ISTIO", "true")));
            assertEquals(List.of(), steps(3, concat(base, "NEVER_KILL_ISTIO_ON_FAILURE", "true")));
            assertTrue(plan(3, concat(base, "NEVER_KILL_ISTIO_ON_FAILURE", "true")).nothingBecause().contains("exit code is 3"));
            assertEquals(List.of(post("http://127.0.0.1:15020/quitquitquit")),
                    steps(0, concat(base, "NEVER_KILL_ISTIO_ON_FAILURE", "true")));
        }

        private String[] concat(String[] a, String... b) {
            List<String> all = new ArrayList<>(List.of(a));
            all.addAll(List.of(b));
            return all.toArray(String[]::new);
        }
    }

    @Nested
    class Configuration {
        private EnvoyPreflight.Config resolve(EnvoyPreflight tool) throws Exception {
            return EnvoyPreflight.Config.resolve(tool);
        }

        private EnvoyPreflight tool(String... env) {
            return TestSupport.tool(TestSupport.env(env), "true");
        }

        @Test
        void aFlagWinsOverItsVariable() throws Exception {
            EnvoyPreflight f = tool("ENVOY_ADMIN_API", "http://127.0.0.1:1", "START_WITHOUT_ENVOY", "true",
                    "QUIT_REQUEST_TIMEOUT", "9s");
            f.flags.put(EnvoyPreflight.Setting.ADMIN_API, "http://127.0.0.1:2");
            f.flags.put(EnvoyPreflight.Setting.START_WITHOUT_ENVOY, "false");
            f.flags.put(EnvoyPreflight.Setting.QUIT_TIMEOUT, "2s");
            EnvoyPreflight.Config c = resolve(f);
            assertEquals(URI.create("http://127.0.0.1:2"), c.url(EnvoyPreflight.Setting.ADMIN_API));
            assertFalse(c.on(EnvoyPreflight.Setting.START_WITHOUT_ENVOY));
            assertEquals(Duration.ofSeconds(2), c.duration(EnvoyPreflight.Setting.QUIT_TIMEOUT));
            assertTrue(c.describe().contains("set by=--admin-api --start-without-envoy --quit-timeout"), c.describe().toString());
        }

        @Test
        void emptyVariablesAreUnsetAndDefaultsApply() throws Exception {
            EnvoyPreflight.Config c = resolve(tool("ENVOY_ADMIN_API", "", "QUIT_REQUEST_TIMEOUT", "",
                    "START_WITHOUT_ENVOY", "", "GENERIC_QUIT_ENDPOINTS", ""));
            assertNull(c.url(EnvoyPreflight.Setting.ADMIN_API));
            assertEquals(Duration.ofSeconds(5), c.duration(EnvoyPreflight.Setting.QUIT_TIMEOUT));
            assertEquals(List.of(), c.urls(EnvoyPreflight.Setting.GENERIC_QUIT_ENDPOINTS));
            assertFalse(c.shouldWait());
            assertTrue(c.describe().contains("set by=defaults only"), c.describe().toString());
        }

        @Test
        void everySettingIsDescribedOnceInTheTablesOrder() throws Exception {
            List<String> names = resolve(tool()).describe().stream().map(l -> l.substring(0, l.indexOf('='))).toList();
            List<String> expected = new ArrayList<>();
            for (EnvoyPreflight.Setting s : EnvoyPreflight.Setting.values()) {
                String name = s.flag().substring(2); // lists in the plural
                expected.add(name + (!s.kind.list() ? "" : name.endsWith("s") ? "es" : "s"));
            }
            expected.add("set by");
            assertEquals(expected, names);
        }

        @Test
        void errorsNameTheVariableAndTheValue() {
            Exception e = assertThrows(EnvoyPreflight.Config.Invalid.class,
                    () -> resolve(tool("WAIT_FOR_ENVOY_TIMEOUT", "soon")));
            assertEquals("WAIT_FOR_ENVOY_TIMEOUT: not a duration (like 500ms, 30s, 2m, 1h30m or a number of"
                    + " seconds): 'soon'", e.getMessage());
        }

        @Test
        void errorsNameTheFlagWhenTheValueCameFromIt() {
            EnvoyPreflight f = tool("ISTIO_QUIT_API", "http://127.0.0.1:15020");
            f.flags.put(EnvoyPreflight.Setting.ISTIO_QUIT_API, "127.0.0.1:15020");
            Exception e = assertThrows(EnvoyPreflight.Config.Invalid.class, () -> resolve(f));
            assertTrue(e.getMessage().startsWith("--istio-quit-api: "), e.getMessage());
        }

        @Test
        void aliasesAreReadAsTheirVariablesAndSaySo() throws Exception {
            EnvoyPreflight.Config c = resolve(tool("SCUTTLE_LOGGING", "true", "NEVER_KILL_ENVOY", "TRUE",
                    "ALWAYS_KILL_ENVOY", "false"));
            assertTrue(c.on(EnvoyPreflight.Setting.VERBOSE));
            assertTrue(c.on(EnvoyPreflight.Setting.NEVER_KILL_ISTIO));
            assertTrue(c.on(EnvoyPreflight.Setting.NEVER_KILL_ISTIO_ON_FAILURE), "ALWAYS_KILL_ENVOY=false is inverted");
            assertFalse(resolve(tool("ALWAYS_KILL_ENVOY", "true")).on(EnvoyPreflight.Setting.NEVER_KILL_ISTIO_ON_FAILURE));
            assertTrue(c.describe().contains("set by=NEVER_KILL_ENVOY ALWAYS_KILL_ENVOY SCUTTLE_LOGGING"),
                    c.describe().toString());
            assertEquals(List.of(), c.warnings());
        }

        @Test
        void theVariableWinsOverItsAliasWithAWarningAndTheFlagOverBoth() throws Exception {
            EnvoyPreflight f = tool("ENVOY_PREFLIGHT_LOGGING", "false", "SCUTTLE_LOGGING", "true");
            assertFalse(resolve(f).on(EnvoyPreflight.Setting.VERBOSE));
            List<String> warnings = resolve(f).warnings().stream().map(EnvoyPreflight.Config.Warning::message)
                    .toList(); // one, naming the alias and what shadows it
            assertEquals(1, warnings.size(), warnings.toString());
            assertTrue(warnings.get(0).contains("SCUTTLE_LOGGING") && warnings.get(0).contains("ENVOY_PREFLIGHT_LOGGING"),
                    warnings.toString());
            f.flags.put(EnvoyPreflight.Setting.VERBOSE, "true");
            assertTrue(resolve(f).on(EnvoyPreflight.Setting.VERBOSE));
        }

        @Test
        void anAliasIsValidatedLikeItsVariable() {
            Exception e = assertThrows(EnvoyPreflight.Config.Invalid.class, () -> resolve(tool("NEVER_KILL_ENVOY", "yes")));
            assertEquals("NEVER_KILL_ENVOY: not a boolean (true or false): 'yes'", e.getMessage());
            e = assertThrows(EnvoyPreflight.Config.Invalid.class,
                    () -> resolve(tool("ENVOY_PREFLIGHT_LOGGING", "true", "SCUTTLE_LOGGING", "maybe")));
            assertTrue(e.getMessage().startsWith("SCUTTLE_LOGGING: "), e.getMessage());
        }

        @Test
        void readyEndpointsAreWaitedForAfterTheAdminApiInTheirOrder() throws Exception {
            var targets = EnvoyPreflight.Wait.targets(resolve(tool("GENERIC_READY_ENDPOINTS",
                    " http://127.0.0.1:15021/healthz/ready , ,http://127.0.0.1:9090/readiness ",
                    "ENVOY_ADMIN_API", "http://127.0.0.1:15000/")));
            assertEquals(List.of(new EnvoyPreflight.Wait.Live(URI.create("http://127.0.0.1:15000/server_info")),
                    new EnvoyPreflight.Wait.Answers2xx(URI.create("http://127.0.0.1:15021/healthz/ready")),
                    new EnvoyPreflight.Wait.Answers2xx(URI.create("http://127.0.0.1:9090/readiness"))), targets);
            EnvoyPreflight.Config linkerd = resolve(tool("GENERIC_READY_ENDPOINTS", "http://127.0.0.1:4191/ready"));
            assertTrue(linkerd.shouldWait());
            assertFalse(resolve(tool("GENERIC_READY_ENDPOINTS", "http://127.0.0.1:4191/ready",
                    "START_WITHOUT_ENVOY", "true")).shouldWait());
        }

        @Test
        void theModesFitTogetherOrAreRejected() throws Exception {
            EnvoyPreflight waitOnly = TestSupport.tool(Map.of());
            waitOnly.modes.add(EnvoyPreflight.Config.Mode.WAIT_ONLY);
            resolve(waitOnly);
            waitOnly.command = List.of("true");
            assertThrows(EnvoyPreflight.Config.Invalid.class, () -> resolve(waitOnly));
            EnvoyPreflight quitOnly = TestSupport.tool(Map.of());
            quitOnly.modes.add(EnvoyPreflight.Config.Mode.QUIT_ONLY);
            quitOnly.exitCode = 255;
            resolve(quitOnly);
            quitOnly.exitCode = 256;
            assertThrows(EnvoyPreflight.Config.Invalid.class, () -> resolve(quitOnly));
            quitOnly.exitCode = 1;
            quitOnly.modes.add(EnvoyPreflight.Config.Mode.DRY_RUN);
            assertThrows(EnvoyPreflight.Config.Invalid.class, () -> resolve(quitOnly));
            EnvoyPreflight exitCodeAlone = TestSupport.tool(Map.of(), "true");
            exitCodeAlone.exitCode = 0;
            assertThrows(EnvoyPreflight.Config.Invalid.class, () -> resolve(exitCodeAlone));
        }

        @Test
        void noCommandIsAnErrorExceptForCheckAndDryRun() throws Exception {
            EnvoyPreflight f = TestSupport.tool(Map.of());
            assertThrows(EnvoyPreflight.Config.Invalid.class, () -> resolve(f));
            f.modes.add(EnvoyPreflight.Config.Mode.DRY_RUN);
            resolve(f);
        }
    }

    @Nested
    class CommandLookup {
        @Test
        void findsTheFirstExecutableOnPathLikeAShell(@org.junit.jupiter.api.io.TempDir Path dir) throws IOException {
            Path a = Files.createDirectory(dir.resolve("path-a"));
            Path b = Files.createDirectory(dir.resolve("path-b"));
            Path plain = Files.writeString(a.resolve("tool"), "#!/bin/sh\n");
            Path exec = Files.writeString(b.resolve("tool"), "#!/bin/sh\n");
            Files.setPosixFilePermissions(exec, PosixFilePermissions.fromString("rwxr-xr-x"));
            EnvoyPreflight.App.Resolved r = EnvoyPreflight.App.resolve("tool", a + ":" + b);
            assertEquals(exec, r.path());
            assertEquals(0, r.exitCode());
            EnvoyPreflight.App.Resolved onlyPlain = EnvoyPreflight.App.resolve("tool", a.toString());
            assertEquals(126, onlyPlain.exitCode());
            assertTrue(onlyPlain.problem().contains(plain.toString()), onlyPlain.problem());
        }

        @Test
        void missingIs127AndADirectoryIs126(@org.junit.jupiter.api.io.TempDir Path dir) throws IOException {
            assertEquals(127, EnvoyPreflight.App.resolve("no-such-command-here", "/usr/bin:/bin").exitCode());
            assertEquals(127, EnvoyPreflight.App.resolve("./no/such/file", "/bin").exitCode());
            assertEquals(126, EnvoyPreflight.App.resolve(dir.toString(), "/bin").exitCode());
            assertEquals(0, EnvoyPreflight.App.resolve("sh", "/nonexistent::/bin:/usr/bin").exitCode());
        }
    }
}
