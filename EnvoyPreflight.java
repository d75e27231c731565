///usr/bin/env jbang "$0" "$@" ; exit $?
//JAVA 17+
//DEPS info.picocli:picocli:4.7.7
//DEPS com.google.code.gson:gson:2.13.2
//COMPILE_OPTIONS -XDignore.symbol.file -XDstringConcat=inline
//RUNTIME_OPTIONS -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss512k -Xmx64m -Xmn4m -Xlog:cds=off -Xlog:cds+dynamic=off
//CDS
//DESCRIPTION Waits for an Envoy sidecar to be LIVE, runs your app, relays its signals,
//DESCRIPTION and quits the sidecar when the app exits, so Kubernetes Jobs can finish.

// Why these options (each kept because bench/Bench.java shows it pays):
// -XDstringConcat=inline   string concatenation without an invokedynamic bootstrap at start-up;
// -XDignore.symbol.file    no warning for sun.misc.Signal, the only signal API on JDK 17;
// SerialGC, C1 only        the fastest start and the least memory for a process that mostly waits;
// -Xmx64m -Xmn4m           a small young generation keeps RSS flat through long waits;
// //CDS, -Xlog:cds=off     JBang archives the classes of a first run; the logging flags silence its
//                          warnings about picocli's Java 5 classes, which cannot be archived.

import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonToken;
import com.google.gson.stream.MalformedJsonException;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;
import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.math.BigDecimal;
import java.net.ConnectException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.NoRouteToHostException;
import java.net.Proxy;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.DoubleSupplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * envoy-preflight: parse the configuration, wait for Envoy, run the app, relay signals,
 * quit the sidecar, exit with the app's code. Reads top to bottom in {@link #call()}.
 */
@Command(name = "envoy-preflight",
        mixinStandardHelpOptions = true,
        version = "envoy-preflight " + EnvoyPreflight.VERSION,
        sortOptions = false,
        usageHelpAutoWidth = true,
        customSynopsis = "envoy-preflight [OPTIONS] [--] COMMAND [ARG...]",
        description = {
            "Waits until the Envoy admin API reports LIVE, runs COMMAND, relays signals",
            "to it, and when it exits tells the sidecar to quit. Exits with its exit code.",
            "Options go before COMMAND; everything from COMMAND on is passed to it verbatim.",
            "A flag wins over its environment variable; an empty variable counts as unset."},
        footer = {"",
            "Exit codes: the app's own; 128+N if it died of signal N; 2 bad configuration;",
            "69 Envoy not LIVE within --give-up-timeout; 70 internal error;",
            "126 COMMAND not executable; 127 COMMAND not found;",
            "128+N stopped by signal N before the app started.",
            "--check: 0 if LIVE, 1 if not."})
public class EnvoyPreflight implements Callable<Integer> {

    static final String VERSION = "1.0.0";
    static final String NAME = "envoy-preflight";

    // Exit codes, following sysexits(3) and the shell's conventions.
    static final int EXIT_USAGE = 2;
    static final int EXIT_UNAVAILABLE = 69;    // EX_UNAVAILABLE: Envoy never became LIVE
    static final int EXIT_SOFTWARE = 70;       // EX_SOFTWARE: a bug of ours, never the app's code
    static final int EXIT_NOT_EXECUTABLE = 126; // as bash: found but cannot be run
    static final int EXIT_NOT_FOUND = 127;      // as bash: not on PATH

    @Option(names = "--admin-api", paramLabel = "URL",
            description = "Envoy admin base URL, e.g. http://127.0.0.1:15000. Unset: run the app"
                    + " directly, no waiting, no quitting.%n  env: ENVOY_ADMIN_API")
    String adminApi;

    @Option(names = "--start-without-envoy", negatable = true,
            description = "Don't wait for Envoy, but still quit the sidecar at exit.%n"
                    + "  env: START_WITHOUT_ENVOY, default: false")
    Boolean startWithoutEnvoy;

    @Option(names = "--wait-timeout", paramLabel = "DUR",
            description = "Stop waiting after DUR and start the app anyway (0: wait forever).%n"
                    + "  env: WAIT_FOR_ENVOY_TIMEOUT, default: 0")
    String waitTimeout;

    @Option(names = "--give-up-timeout", paramLabel = "DUR",
            description = "Stop waiting after DUR and exit 69 without starting the app; wins over"
                    + " --wait-timeout (0: never).%n  env: QUIT_WITHOUT_ENVOY_TIMEOUT, default: 0")
    String giveUpTimeout;

    @Option(names = "--istio-quit-api", paramLabel = "URL",
            description = "pilot-agent base URL, e.g. http://127.0.0.1:15020; POST URL/quitquitquit.%n"
                    + "  env: ISTIO_QUIT_API")
    String istioQuitApi;

    @Option(names = "--istio-fallback-pkill", negatable = true,
            description = "If the Istio quit API fails, SIGINT pilot-agent as well.%n"
                    + "  env: ISTIO_FALLBACK_PKILL, default: false")
    Boolean istioFallbackPkill;

    @Option(names = "--generic-quit-endpoint", paramLabel = "URL",
            description = "Full URL to POST first at exit; repeatable, in order (comma-separated"
                    + " lists too).%n  env: GENERIC_QUIT_ENDPOINTS (comma-separated)")
    List<String> genericQuitEndpoints;

    @Option(names = "--never-kill-istio", negatable = true,
            description = "Never quit anything.%n  env: NEVER_KILL_ISTIO, default: false")
    Boolean neverKillIstio;

    @Option(names = "--never-kill-istio-on-failure", negatable = true,
            description = "Don't quit anything when the exit code is not 0.%n"
                    + "  env: NEVER_KILL_ISTIO_ON_FAILURE, default: false")
    Boolean neverKillIstioOnFailure;

    @Option(names = "--quit-timeout", paramLabel = "DUR",
            description = "Time limit of each quit request.%n  env: QUIT_REQUEST_TIMEOUT, default: 5s")
    String quitTimeout;

    @Option(names = "--poll-max-interval", paramLabel = "DUR",
            description = "Longest pause between two readiness polls; bounds how late the app"
                    + " starts after Envoy turns LIVE.%n  env: ENVOY_PREFLIGHT_POLL_MAX_INTERVAL,"
                    + " default: 200ms")
    String pollMaxInterval;

    @Option(names = {"-v", "--verbose"}, negatable = true,
            description = "Log each step to stderr (default: warnings and errors only).%n"
                    + "  env: ENVOY_PREFLIGHT_LOGGING, default: false")
    Boolean verbose;

    @Option(names = "--log-format", paramLabel = "text|json",
            description = "text, or one JSON object per line.%n"
                    + "  env: ENVOY_PREFLIGHT_LOG_FORMAT, default: text")
    String logFormat;

    @Option(names = "--check",
            description = "Ask the admin API once, print its state, exit 0 if LIVE else 1.")
    boolean check;

    @Option(names = "--dry-run",
            description = "Print the resolved configuration and what would be done; run nothing.")
    boolean dryRun;

    @Parameters(paramLabel = "COMMAND", arity = "0..*",
            description = "The app and its arguments, looked up on PATH like a shell does.")
    List<String> command = new ArrayList<>();

    public static void main(String[] args) {
        // Containers configure by environment and pass only the command: then there is nothing
        // for picocli to parse, and skipping it saves ~100 ms of start-up (its Java 5 classes
        // can't be CDS-archived and go through the old verifier). Options, --help and errors
        // all go through picocli.
        boolean endOfOptions = args.length > 0 && args[0].equals("--"); // as picocli reads "--"
        if (endOfOptions || args.length > 0 && !args[0].startsWith("-")) {
            EnvoyPreflight onlyCommand = new EnvoyPreflight();
            onlyCommand.command = List.of(args).subList(endOfOptions ? 1 : 0, args.length);
            System.exit(onlyCommand.call());
        }
        System.exit(commandLine().execute(args));
    }

    static CommandLine commandLine() {
        return new CommandLine(new EnvoyPreflight())
                .setStopAtPositional(true)   // `envoy-preflight ls --help`: --help is ls's
                .setExpandAtFiles(false)     // `curl -d @body.json` must reach curl as written
                .setParameterExceptionHandler((e, args) -> {
                    // One line, no usage dump: this runs in container logs, not at a prompt. The
                    // format comes from the variable, or from a --log-format parsed before the error.
                    EnvoyPreflight parsed = e.getCommandLine().getCommand();
                    Log.forErrors(Log.formatSource(parsed, System.getenv())).error(e.getMessage() + " (see --help)");
                    return EXIT_USAGE;
                });
    }

    /** Never throws: a bug of ours becomes exit code 70, after the sidecar was still quit. */
    @Override
    public Integer call() {
        try {
            return preflight();
        } catch (RuntimeException | Error e) {
            System.err.println(NAME + ": internal error: " + e);
            return EXIT_SOFTWARE;
        }
    }

    private int preflight() {
        Map<String, String> env = System.getenv();
        // The format first, so that any other configuration error is logged in it.
        Log log = Log.forErrors(Log.formatSource(this, env));
        Config config;
        try {
            config = Config.resolve(this, env);
        } catch (Config.Invalid e) {
            log.error(e.getMessage());
            return EXIT_USAGE;
        }
        log = new Log(config.verbose(), config.logFormat(), System.err);
        if (config.check()) return AdminApi.check(config, System.out);
        if (config.dryRun()) return Config.printDryRun(config, System.out);
        if (log.verbose()) log.info("configuration: " + String.join(", ", config.describe()));

        Child child = new Child(config.command(), log);
        Signals.relayTo(child, log);
        int code = EXIT_SOFTWARE; // what we return if something below throws
        try {
            code = awaitThenRun(config, child, log);
        } finally {
            // Runs on every exit once the configuration was accepted, and never changes the code.
            Sidecar.quit(config, code, log);
            log.info("exit code " + code);
        }
        return code;
    }

    /** Waits for Envoy as configured, then runs the app; returns the code to exit with. */
    static int awaitThenRun(Config config, Child child, Log log) {
        if (config.shouldWait()) {
            AdminApi.Outcome outcome = new AdminApi(config, log).awaitLive(child);
            switch (outcome) {
                case STOPPED:
                    log.warn("stopped by SIG" + Signals.name(child.stopSignal())
                            + " while waiting for Envoy; the app was not started");
                    return 128 + child.stopSignal();
                case GAVE_UP:
                    log.error("Envoy was not LIVE within the give-up timeout ("
                            + Durations.format(config.giveUpTimeout()) + "); the app was not started");
                    return EXIT_UNAVAILABLE;
                case WAIT_TIMED_OUT:
                    log.warn("Envoy was not LIVE within the wait timeout ("
                            + Durations.format(config.waitTimeout()) + "); starting the app anyway");
                    break;
                case LIVE:
                    break;
            }
        }
        return child.run();
    }

    // ---------------------------------------------------------------------------------------
    // Configuration: every setting from its flag, else its environment variable, else default.
    // ---------------------------------------------------------------------------------------

    /** The accepted configuration; {@link #resolve} rejects anything it cannot use. */
    record Config(URI adminApi, boolean startWithoutEnvoy, Duration waitTimeout,
                  Duration giveUpTimeout, URI istioQuitApi, boolean istioFallbackPkill,
                  List<URI> genericQuitEndpoints, boolean neverKillIstio,
                  boolean neverKillIstioOnFailure, Duration quitTimeout, Duration pollMaxInterval,
                  boolean verbose, Log.Format logFormat, boolean check, boolean dryRun,
                  List<String> command, List<String> sources) {

        static final Duration DEFAULT_QUIT_TIMEOUT = Duration.ofSeconds(5);
        static final Duration DEFAULT_POLL_MAX_INTERVAL = Duration.ofMillis(200);

        /** A value we cannot use; the message names where it came from and what it was. */
        static final class Invalid extends Exception {
            Invalid(String message) {
                super(message, null, false, false);
            }
        }

        /**
         * One setting's raw text and where it came from: the flag if given, else the variable (an
         * empty variable counts as unset). Its typed readers turn a bad value into an Invalid that
         * names the source and the value. (Plain methods, not parser lambdas: each lambda costs
         * start-up time on every run.)
         */
        record Source(String name, String raw) {
            static Source of(String flag, Object flagValue, String variable, Map<String, String> env) {
                if (flagValue != null) return new Source(flag, flagValue.toString());
                String value = env.get(variable);
                return new Source(variable, value == null || value.isEmpty() ? null : value);
            }

            private Invalid invalid(IllegalArgumentException e) {
                return new Invalid(name + ": " + e.getMessage() + ": '" + Redact.text(raw) + "'");
            }

            boolean bool() throws Invalid {
                try { return raw != null && Bools.parse(raw); } catch (IllegalArgumentException e) { throw invalid(e); }
            }

            Duration duration(Duration unset) throws Invalid {
                try { return raw == null ? unset : Durations.parse(raw); } catch (IllegalArgumentException e) { throw invalid(e); }
            }

            Duration positiveDuration(Duration unset) throws Invalid {
                try { return raw == null ? unset : Durations.parsePositive(raw); } catch (IllegalArgumentException e) { throw invalid(e); }
            }

            URI baseUrl() throws Invalid {
                try { return raw == null ? null : Urls.parseBase(raw); } catch (IllegalArgumentException e) { throw invalid(e); }
            }

            List<URI> urls() throws Invalid {
                try { return raw == null ? List.of() : Urls.parseList(raw); } catch (IllegalArgumentException e) { throw invalid(e); }
            }

            Log.Format logFormat() throws Invalid {
                try { return raw == null ? Log.Format.TEXT : Log.Format.parse(raw); } catch (IllegalArgumentException e) { throw invalid(e); }
            }
        }

        static Config resolve(EnvoyPreflight flags, Map<String, String> env) throws Invalid {
            Source admin = Source.of("--admin-api", flags.adminApi, "ENVOY_ADMIN_API", env);
            Source startWithout = Source.of("--start-without-envoy", flags.startWithoutEnvoy, "START_WITHOUT_ENVOY", env);
            Source wait = Source.of("--wait-timeout", flags.waitTimeout, "WAIT_FOR_ENVOY_TIMEOUT", env);
            Source giveUp = Source.of("--give-up-timeout", flags.giveUpTimeout, "QUIT_WITHOUT_ENVOY_TIMEOUT", env);
            Source istio = Source.of("--istio-quit-api", flags.istioQuitApi, "ISTIO_QUIT_API", env);
            Source pkill = Source.of("--istio-fallback-pkill", flags.istioFallbackPkill, "ISTIO_FALLBACK_PKILL", env);
            Source generic = Source.of("--generic-quit-endpoint", flags.genericQuitEndpoints == null
                    || flags.genericQuitEndpoints.isEmpty() ? null : String.join(",", flags.genericQuitEndpoints),
                    "GENERIC_QUIT_ENDPOINTS", env);
            Source never = Source.of("--never-kill-istio", flags.neverKillIstio, "NEVER_KILL_ISTIO", env);
            Source neverOnFailure = Source.of("--never-kill-istio-on-failure", flags.neverKillIstioOnFailure,
                    "NEVER_KILL_ISTIO_ON_FAILURE", env);
            Source quit = Source.of("--quit-timeout", flags.quitTimeout, "QUIT_REQUEST_TIMEOUT", env);
            Source pollMax = Source.of("--poll-max-interval", flags.pollMaxInterval,
                    "ENVOY_PREFLIGHT_POLL_MAX_INTERVAL", env);
            Source verbose = Source.of("--verbose", flags.verbose, "ENVOY_PREFLIGHT_LOGGING", env);
            Source format = Log.formatSource(flags, env);
            // Read in this order, so that the first bad value reported is the first in --help.
            Config config = new Config(admin.baseUrl(), startWithout.bool(), wait.duration(Duration.ZERO),
                    giveUp.duration(Duration.ZERO), istio.baseUrl(), pkill.bool(), generic.urls(), never.bool(),
                    neverOnFailure.bool(), quit.positiveDuration(DEFAULT_QUIT_TIMEOUT),
                    pollMax.positiveDuration(DEFAULT_POLL_MAX_INTERVAL), verbose.bool(), format.logFormat(),
                    flags.check, flags.dryRun, List.copyOf(flags.command), setBy(admin, startWithout, wait, giveUp,
                            istio, pkill, generic, never, neverOnFailure, quit, pollMax, verbose, format));
            if (flags.check && config.adminApi() == null) {
                throw new Invalid("--check: needs ENVOY_ADMIN_API or --admin-api");
            }
            if (flags.command.isEmpty() && !flags.check && !flags.dryRun) {
                throw new Invalid("no COMMAND given: envoy-preflight [OPTIONS] [--] COMMAND [ARG...]");
            }
            return config;
        }

        /** The names of the flags and variables that set something, for the log. */
        private static List<String> setBy(Source... all) {
            List<String> names = new ArrayList<>();
            for (Source s : all) if (s.raw() != null) names.add(s.name());
            return List.copyOf(names);
        }

        boolean shouldWait() {
            return adminApi != null && !startWithoutEnvoy;
        }

        /** The resolved settings as "name=value" (credentials redacted), for logs and --dry-run. */
        List<String> describe() {
            Map<String, String> m = new LinkedHashMap<>();
            m.put("admin-api", adminApi == null ? "unset" : Redact.uri(adminApi));
            m.put("start-without-envoy", String.valueOf(startWithoutEnvoy));
            m.put("wait-timeout", Durations.format(waitTimeout));
            m.put("give-up-timeout", Durations.format(giveUpTimeout));
            m.put("istio-quit-api", istioQuitApi == null ? "unset" : Redact.uri(istioQuitApi));
            m.put("istio-fallback-pkill", String.valueOf(istioFallbackPkill));
            m.put("generic-quit-endpoints", genericQuitEndpoints.stream().map(Redact::uri).toList().toString());
            m.put("never-kill-istio", String.valueOf(neverKillIstio));
            m.put("never-kill-istio-on-failure", String.valueOf(neverKillIstioOnFailure));
            m.put("quit-timeout", Durations.format(quitTimeout));
            m.put("poll-max-interval", Durations.format(pollMaxInterval));
            m.put("verbose", String.valueOf(verbose));
            m.put("log-format", logFormat.name().toLowerCase(Locale.ROOT));
            m.put("set by", sources.isEmpty() ? "defaults only" : String.join(" ", sources));
            List<String> lines = new ArrayList<>();
            m.forEach((k, v) -> lines.add(k + "=" + v));
            return lines;
        }

        static int printDryRun(Config config, PrintStream out) {
            config.describe().forEach(out::println);
            out.println("command=" + config.command());
            if (config.shouldWait()) {
                out.println("before start: GET " + Redact.uri(Urls.resolve(config.adminApi(), "server_info"))
                        + " until state LIVE, " + (!config.giveUpTimeout().isZero()
                                ? "exit 69 after " + Durations.format(config.giveUpTimeout())
                                : !config.waitTimeout().isZero()
                                        ? "start anyway after " + Durations.format(config.waitTimeout())
                                        : "for as long as it takes"));
            } else {
                out.println("before start: no waiting ("
                        + (config.adminApi() == null ? "no admin API" : "start without Envoy") + ")");
            }
            out.println("at exit with code 0: " + Sidecar.plan(config, 0).describe());
            out.println("at exit with code 1: " + Sidecar.plan(config, 1).describe());
            return 0;
        }
    }

    /** Booleans as the original reads them: true or false in any case, nothing else. */
    static final class Bools {
        static boolean parse(String raw) {
            if (raw.equalsIgnoreCase("true")) return true;
            if (raw.equalsIgnoreCase("false")) return false;
            throw new IllegalArgumentException("not a boolean (true or false)");
        }
    }

    /** Durations in Go's syntax (500ms, 1h30m) as scuttle accepts them, or bare seconds. */
    static final class Durations {
        private static final Pattern BARE_SECONDS = Pattern.compile("\\d+(\\.\\d+)?");
        private static final Pattern PART = Pattern.compile("(\\d+\\.?\\d*|\\.\\d+)(ns|us|µs|μs|ms|s|m|h)");
        private static final Map<String, Long> NANOS_PER_UNIT = Map.of(
                "ns", 1L, "us", 1_000L, "µs", 1_000L, "μs", 1_000L, "ms", 1_000_000L,
                "s", 1_000_000_000L, "m", 60_000_000_000L, "h", 3_600_000_000_000L);

        static Duration parse(String raw) {
            String s = raw.trim();
            if (!s.equals(raw) || s.isEmpty()) throw new IllegalArgumentException("not a duration");
            if (s.startsWith("-")) throw new IllegalArgumentException("negative duration");
            BigDecimal nanos;
            if (BARE_SECONDS.matcher(s).matches()) {
                nanos = new BigDecimal(s).multiply(BigDecimal.valueOf(1_000_000_000L));
            } else {
                nanos = BigDecimal.ZERO;
                Matcher m = PART.matcher(s);
                int at = 0;
                while (at < s.length()) {
                    if (!m.find(at) || m.start() != at) {
                        throw new IllegalArgumentException("not a duration (like 500ms, 30s, 2m, 1h30m"
                                + " or a number of seconds)");
                    }
                    nanos = nanos.add(new BigDecimal(m.group(1).endsWith(".") ? m.group(1) + "0" : m.group(1))
                            .multiply(BigDecimal.valueOf(NANOS_PER_UNIT.get(m.group(2)))));
                    at = m.end();
                }
            }
            if (nanos.compareTo(BigDecimal.valueOf(Long.MAX_VALUE)) > 0) {
                throw new IllegalArgumentException("duration too long");
            }
            return Duration.ofNanos(nanos.longValue());
        }

        static Duration parsePositive(String raw) {
            Duration d = parse(raw);
            if (d.isZero()) throw new IllegalArgumentException("must be longer than 0");
            return d;
        }

        static String format(Duration d) {
            if (d.isZero()) return "0";
            long ms = d.toMillis();
            if (ms < 1000 || ms % 1000 != 0) return ms + "ms";
            long s = ms / 1000;
            return (s >= 3600 ? s / 3600 + "h" : "") + (s % 3600 >= 60 ? s % 3600 / 60 + "m" : "")
                    + (s % 60 != 0 ? s % 60 + "s" : "");
        }
    }

    /** URL parsing and the loopback judgement, on parsed URLs only. */
    static final class Urls {
        private static final Pattern IPV4 = Pattern.compile("(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})");

        /** A full http(s) URL with a host, e.g. a generic quit endpoint. */
        static URI parse(String raw) {
            URI uri;
            try {
                uri = new URI(raw);
            } catch (URISyntaxException e) {
                throw new IllegalArgumentException("not a URL (" + e.getReason() + ")");
            }
            String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
            if (!scheme.equals("http") && !scheme.equals("https")) {
                throw new IllegalArgumentException("not an http or https URL");
            }
            if (uri.getHost() == null || uri.getHost().isEmpty()) {
                throw new IllegalArgumentException("URL has no host");
            }
            if (uri.getRawFragment() != null) throw new IllegalArgumentException("URL has a #fragment");
            return uri;
        }

        /** A base URL that paths are appended to: no query; a trailing slash is fine. */
        static URI parseBase(String raw) {
            URI uri = parse(raw);
            if (uri.getRawQuery() != null) throw new IllegalArgumentException("base URL has a ?query");
            return uri;
        }

        /** Comma-separated URLs; blanks and spaces around entries are ignored. */
        static List<URI> parseList(String raw) {
            List<URI> uris = new ArrayList<>();
            for (String entry : raw.split(",")) {
                String e = entry.strip();
                if (e.isEmpty()) continue;
                try {
                    uris.add(parse(e));
                } catch (IllegalArgumentException ex) {
                    throw new IllegalArgumentException("entry '" + Redact.text(e) + "': " + ex.getMessage());
                }
            }
            return List.copyOf(uris);
        }

        /** base + "/" + path, whatever slashes base ends with. */
        static URI resolve(URI base, String path) {
            String basePath = base.getRawPath() == null ? "" : base.getRawPath().replaceAll("/+$", "");
            try {
                return new URI(base.getScheme(), base.getRawAuthority(), null, null, null)
                        .resolve(basePath + "/" + path);
            } catch (URISyntaxException e) {
                throw new IllegalArgumentException(e);
            }
        }

        /** localhost, 127.0.0.0/8 or ::1 (any spelling), judged without any DNS lookup. */
        static boolean isLoopback(URI uri) {
            if (uri.getHost() == null) return false; // e.g. 127.0.0.256: not an address at all
            String host = uri.getHost().toLowerCase(Locale.ROOT);
            if (host.equals("localhost") || host.equals("localhost.")) return true;
            Matcher v4 = IPV4.matcher(host);
            if (v4.matches()) {
                for (int i = 1; i <= 4; i++) if (Integer.parseInt(v4.group(i)) > 255) return false;
                return Integer.parseInt(v4.group(1)) == 127;
            }
            if (host.startsWith("[") && host.endsWith("]")) {
                try {
                    // A bracketed literal: InetAddress parses it without asking DNS.
                    return InetAddress.getByName(host.substring(1, host.length() - 1)).isLoopbackAddress();
                } catch (UnknownHostException e) {
                    return false;
                }
            }
            return false;
        }
    }

    /** Keeps credentials in URLs (user:pass@) out of every log line and error. */
    static final class Redact {
        private static final Pattern USERINFO = Pattern.compile("(?<=//)[^/?#\\s]*@");

        static String text(String s) {
            return s == null ? null : USERINFO.matcher(s).replaceAll("***@");
        }

        static String uri(URI uri) {
            return text(uri.toString());
        }
    }

    // ---------------------------------------------------------------------------------------
    // Logging: stderr only, so stdout stays the app's.
    // ---------------------------------------------------------------------------------------

    static final class Log {
        enum Format {
            TEXT, JSON;

            static Format parse(String raw) {
                return switch (raw.toLowerCase(Locale.ROOT)) {
                    case "text" -> TEXT;
                    case "json" -> JSON;
                    default -> throw new IllegalArgumentException("not a log format (text or json)");
                };
            }
        }

        private final boolean verbose;
        private final Format format;
        private final PrintStream err;

        Log(boolean verbose, Format format, PrintStream err) {
            this.verbose = verbose;
            this.format = format;
            this.err = err;
        }

        static Config.Source formatSource(EnvoyPreflight flags, Map<String, String> env) {
            return Config.Source.of("--log-format", flags.logFormat, "ENVOY_PREFLIGHT_LOG_FORMAT", env);
        }

        /** A log for errors before the configuration is known: in the asked format, else text. */
        static Log forErrors(Config.Source format) {
            try {
                return new Log(false, format.logFormat(), System.err);
            } catch (Config.Invalid e) {
                return new Log(false, Format.TEXT, System.err); // the bad format itself is reported later
            }
        }

        boolean verbose() {
            return verbose;
        }

        void info(String message) {
            if (verbose) write("info", message);
        }

        void warn(String message) {
            write("warning", message);
        }

        void error(String message) {
            write("error", message);
        }

        private void write(String level, String message) {
            String safe = Redact.text(message);
            String line = format == Format.JSON
                    ? "{\"time\":\"" + Instant.now() + "\",\"level\":\"" + level + "\",\"logger\":\""
                            + NAME + "\",\"msg\":" + Json.quote(safe) + "}"
                    : NAME + ": " + (level.equals("info") ? "" : level + ": ") + safe;
            synchronized (err) {
                err.println(line);
                err.flush();
            }
        }
    }

    static final class Json {
        static String quote(String s) {
            StringBuilder b = new StringBuilder(s.length() + 2).append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"' -> b.append("\\\"");
                    case '\\' -> b.append("\\\\");
                    case '\n' -> b.append("\\n");
                    case '\r' -> b.append("\\r");
                    case '\t' -> b.append("\\t");
                    default -> {
                        if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
                        else b.append(c);
                    }
                }
            }
            return b.append('"').toString();
        }
    }

    // ---------------------------------------------------------------------------------------
    // Waiting for Envoy: poll /server_info with jittered exponential backoff.
    // ---------------------------------------------------------------------------------------

    /** Pauses between polls: start near 100 ms, double, never above the cap (jitter only lowers). */
    static final class Backoff {
        static final Duration INITIAL = Duration.ofMillis(100);
        private final long capNanos;
        private final DoubleSupplier random;
        private long nextNanos = INITIAL.toNanos();

        Backoff(Duration cap, DoubleSupplier random) {
            this.capNanos = cap.toNanos();
            this.random = random;
        }

        Duration next() {
            long base = Math.min(nextNanos, capNanos);
            nextNanos = Math.min(capNanos, nextNanos * 2);
            // Up to 20% shorter, so that many Jobs started together don't poll in lockstep.
            return Duration.ofNanos(base - (long) (base * 0.2 * random.getAsDouble()));
        }
    }

    static final class AdminApi {
        /** Each poll's own limit, so that a hung admin endpoint never stalls the wait. */
        static final Duration POLL_TIMEOUT = Duration.ofSeconds(1);

        enum Outcome { LIVE, WAIT_TIMED_OUT, GAVE_UP, STOPPED }

        /** One poll's answer: LIVE or not, and what was seen, for the log. */
        record Poll(boolean live, String seen) {}

        private final Config config;
        private final URI serverInfo;
        private final Log log;

        AdminApi(Config config, Log log) {
            this.config = config;
            this.serverInfo = Urls.resolve(config.adminApi(), "server_info");
            this.log = log;
        }

        Outcome awaitLive(Child child) {
            long start = System.nanoTime();
            Duration giveUp = config.giveUpTimeout();
            // As in scuttle, a give-up timeout replaces the wait timeout: the app never starts early.
            Duration startAnyway = giveUp.isZero() ? config.waitTimeout() : Duration.ZERO;
            Backoff backoff = new Backoff(config.pollMaxInterval(), ThreadLocalRandom.current()::nextDouble);
            log.info("waiting for Envoy: GET " + Redact.uri(serverInfo));
            for (int polls = 1; ; polls++) {
                long left = Math.min(nanosLeft(start, giveUp), nanosLeft(start, startAnyway));
                Duration timeout = Duration.ofNanos(Math.max(1, Math.min(POLL_TIMEOUT.toNanos(), left)));
                Poll poll = poll(timeout, child.abortOnStop());
                if (child.stopSignal() != 0) return Outcome.STOPPED;
                log.info("poll " + polls + ": " + poll.seen());
                if (poll.live()) {
                    log.info("LIVE after " + polls + " polls in " + (System.nanoTime() - start) / 1_000_000 + " ms");
                    return Outcome.LIVE;
                }
                long giveUpLeft = nanosLeft(start, giveUp);
                long startAnywayLeft = nanosLeft(start, startAnyway);
                if (giveUpLeft <= 0) return Outcome.GAVE_UP;
                if (startAnywayLeft <= 0) return Outcome.WAIT_TIMED_OUT;
                long pause = Math.min(backoff.next().toNanos(), Math.min(giveUpLeft, startAnywayLeft));
                if (child.sleepUnlessStopped(pause)) return Outcome.STOPPED;
            }
        }

        /** How long until limit has passed since start; no limit (zero) never runs out. */
        private static long nanosLeft(long start, Duration limit) {
            return limit.isZero() ? Long.MAX_VALUE : limit.toNanos() - (System.nanoTime() - start);
        }

        Poll poll(Duration timeout, Http.Abort abort) {
            try {
                return Http.exchange("GET", serverInfo, timeout, abort, (status, body) -> {
                    if (status != 200) return new Poll(false, "HTTP " + status);
                    String state = topLevelState(body);
                    if (state == null) return new Poll(false, "HTTP 200 without a top-level state");
                    return new Poll(state.equals("LIVE"), "state " + state);
                });
            } catch (IOException e) {
                return new Poll(false, Http.describe(e, timeout));
            }
        }

        /**
         * The top-level "state" of a JSON object (null if it has none), read as a stream so that a
         * huge body costs no memory; the whole document must be valid JSON.
         */
        static String topLevelState(InputStream body) throws IOException {
            JsonReader json = new JsonReader(new InputStreamReader(body, StandardCharsets.UTF_8));
            try {
                String state = null;
                json.beginObject();
                while (json.hasNext()) {
                    String name = json.nextName();
                    if (name.equals("state") && json.peek() == JsonToken.STRING) state = json.nextString();
                    else json.skipValue();
                }
                json.endObject();
                if (json.peek() != JsonToken.END_DOCUMENT) throw new MalformedJsonException("data after the object");
                return state;
            } catch (MalformedJsonException | IllegalStateException e) {
                throw new NotJson(e.getMessage());
            }
        }

        /** The body was not a JSON object: a "not yet", like any other wrong answer. */
        static final class NotJson extends IOException {
            NotJson(String message) {
                super("HTTP 200 but not a JSON object (" + message + ")");
            }
        }

        static int check(Config config, PrintStream out) {
            AdminApi api = new AdminApi(config, new Log(false, config.logFormat(), System.err));
            Poll poll = api.poll(POLL_TIMEOUT, new Http.Abort());
            out.println(poll.live() ? "LIVE" : poll.seen());
            return poll.live() ? 0 : 1;
        }
    }

    // ---------------------------------------------------------------------------------------
    // A small HTTP/1.1 client: one request per connection, one deadline for the whole exchange,
    // never through a proxy, never following redirects, streaming bodies of any size.
    // ---------------------------------------------------------------------------------------

    static final class Http {
        private static final int MAX_HEADER_BYTES = 64 * 1024;

        interface BodyReader<T> {
            T read(int status, InputStream body) throws IOException;
        }

        /** Lets another thread cut a request short (a stop signal during the wait). */
        static final class Abort {
            private volatile boolean aborted;
            private volatile Socket socket;

            void abort() {
                aborted = true;
                closeQuietly(socket);
            }

            void attach(Socket s) throws IOException {
                socket = s;
                if (aborted) throw new IOException("aborted");
            }
        }

        static <T> T exchange(String method, URI uri, Duration timeout, Abort abort, BodyReader<T> reader)
                throws IOException {
            long deadline = System.nanoTime() + timeout.toNanos();
            boolean https = uri.getScheme().equalsIgnoreCase("https");
            String host = uri.getHost().startsWith("[")
                    ? uri.getHost().substring(1, uri.getHost().length() - 1) : uri.getHost();
            int port = uri.getPort() != -1 ? uri.getPort() : https ? 443 : 80;
            try (Socket socket = connect(host, port, https, deadline, abort)) {
                socket.getOutputStream().write(request(method, uri));
                socket.getOutputStream().flush();
                InputStream in = new BufferedInputStream(new DeadlineInputStream(socket, deadline));
                int status;
                Map<String, String> headers;
                do { // 1xx answers are interim: the real one follows
                    status = statusOf(readLine(in));
                    headers = readHeaders(in);
                } while (status / 100 == 1);
                return reader.read(status, bodyOf(status, headers, in));
            }
        }

        private static Socket connect(String host, int port, boolean https, long deadline, Abort abort)
                throws IOException {
            IOException last = null;
            for (InetAddress address : InetAddress.getAllByName(host)) {
                Socket socket = new Socket(Proxy.NO_PROXY);
                try {
                    abort.attach(socket);
                    socket.connect(new InetSocketAddress(address, port), remainingMillis(deadline));
                    socket.setTcpNoDelay(true);
                    if (!https) return socket;
                    SSLSocket tls = (SSLSocket) ((SSLSocketFactory) SSLSocketFactory.getDefault())
                            .createSocket(socket, host, port, true);
                    SSLParameters params = tls.getSSLParameters();
                    params.setEndpointIdentificationAlgorithm("HTTPS");
                    tls.setSSLParameters(params);
                    abort.attach(tls);
                    tls.setSoTimeout(remainingMillis(deadline));
                    tls.startHandshake();
                    return tls;
                } catch (IOException e) {
                    closeQuietly(socket);
                    last = e;
                    if (e instanceof SocketTimeoutException || remainingNanos(deadline) <= 0) break;
                }
            }
            throw last;
        }

        private static byte[] request(String method, URI uri) {
            String target = (uri.getRawPath() == null || uri.getRawPath().isEmpty() ? "/" : uri.getRawPath())
                    + (uri.getRawQuery() == null ? "" : "?" + uri.getRawQuery());
            String hostHeader = uri.getHost() + (uri.getPort() == -1 ? "" : ":" + uri.getPort());
            StringBuilder r = new StringBuilder()
                    .append(method).append(' ').append(target).append(" HTTP/1.1\r\n")
                    .append("Host: ").append(hostHeader).append("\r\n")
                    .append("User-Agent: ").append(NAME).append('/').append(VERSION).append("\r\n")
                    .append("Accept: */*\r\n")
                    .append("Connection: close\r\n");
            if (!method.equals("GET")) r.append("Content-Length: 0\r\n");
            if (uri.getRawUserInfo() != null) {
                String credentials = uri.getUserInfo();
                r.append("Authorization: Basic ")
                        .append(Base64.getEncoder().encodeToString(credentials.getBytes(StandardCharsets.UTF_8)))
                        .append("\r\n");
            }
            return r.append("\r\n").toString().getBytes(StandardCharsets.ISO_8859_1);
        }

        private static int statusOf(String statusLine) throws IOException {
            String[] parts = statusLine.split(" ", 3);
            if (parts.length < 2 || !parts[0].startsWith("HTTP/") || !parts[1].matches("\\d{3}")) {
                throw new IOException("not an HTTP response: " + statusLine.substring(0, Math.min(60, statusLine.length())));
            }
            return Integer.parseInt(parts[1]);
        }

        private static Map<String, String> readHeaders(InputStream in) throws IOException {
            Map<String, String> headers = new LinkedHashMap<>();
            int total = 0;
            for (String line; !(line = readLine(in)).isEmpty(); ) {
                total += line.length();
                if (total > MAX_HEADER_BYTES) throw new IOException("response headers over 64 KiB");
                int colon = line.indexOf(':');
                if (colon > 0) {
                    headers.merge(line.substring(0, colon).trim().toLowerCase(Locale.ROOT),
                            line.substring(colon + 1).trim(), (a, b) -> a + "," + b);
                }
            }
            return headers;
        }

        private static InputStream bodyOf(int status, Map<String, String> headers, InputStream in)
                throws IOException {
            if (status == 204 || status == 304) return InputStream.nullInputStream();
            if (headers.getOrDefault("transfer-encoding", "").toLowerCase(Locale.ROOT).contains("chunked")) {
                return new ChunkedInputStream(in);
            }
            String length = headers.get("content-length");
            if (length == null) return in; // the body ends when the server closes
            try {
                return new FixedLengthInputStream(in, Long.parseLong(length.split(",")[0].trim()));
            } catch (NumberFormatException e) {
                throw new IOException("bad Content-Length: " + length);
            }
        }

        /** A CRLF- (or LF-) terminated line of ISO-8859-1 text, bounded in length. */
        static String readLine(InputStream in) throws IOException {
            ByteArrayOutputStream line = new ByteArrayOutputStream(64);
            for (int b; (b = in.read()) != '\n'; ) {
                if (b == -1) throw new EOFException("connection closed mid-response");
                if (line.size() >= MAX_HEADER_BYTES) throw new IOException("response line over 64 KiB");
                if (b != '\r') line.write(b);
            }
            return line.toString(StandardCharsets.ISO_8859_1);
        }

        static String describe(IOException e, Duration timeout) {
            if (e instanceof SocketTimeoutException) return "no answer within " + Durations.format(timeout);
            if (e instanceof ConnectException) return "connection refused";
            if (e instanceof UnknownHostException) return "unknown host " + e.getMessage();
            if (e instanceof NoRouteToHostException) return "no route to host";
            if (e instanceof AdminApi.NotJson || e instanceof EOFException) return e.getMessage();
            return e.getClass().getSimpleName() + ": " + e.getMessage();
        }

        static int remainingMillis(long deadline) throws SocketTimeoutException {
            long nanos = remainingNanos(deadline);
            if (nanos <= 0) throw new SocketTimeoutException("deadline passed");
            return (int) Math.max(1, Math.min(Integer.MAX_VALUE, TimeUnit.NANOSECONDS.toMillis(nanos)));
        }

        static long remainingNanos(long deadline) {
            return deadline - System.nanoTime();
        }

        static void closeQuietly(Socket s) {
            if (s == null) return;
            try {
                s.close();
            } catch (IOException ignored) {
                // closing is best effort: the socket is being abandoned
            }
        }

        /** Every read waits at most until the exchange's deadline, however slowly bytes drip. */
        static final class DeadlineInputStream extends InputStream {
            private final Socket socket;
            private final InputStream in;
            private final long deadline;

            DeadlineInputStream(Socket socket, long deadline) throws IOException {
                this.socket = socket;
                this.in = socket.getInputStream();
                this.deadline = deadline;
            }

            @Override
            public int read() throws IOException {
                byte[] one = new byte[1];
                return read(one, 0, 1) == -1 ? -1 : one[0] & 0xff;
            }

            @Override
            public int read(byte[] b, int off, int len) throws IOException {
                socket.setSoTimeout(remainingMillis(deadline));
                return in.read(b, off, len);
            }
        }

        static final class FixedLengthInputStream extends InputStream {
            private final InputStream in;
            private final long length;
            private long left;

            FixedLengthInputStream(InputStream in, long length) {
                this.in = in;
                this.length = length;
                this.left = length;
            }

            @Override
            public int read() throws IOException {
                byte[] one = new byte[1];
                return read(one, 0, 1) == -1 ? -1 : one[0] & 0xff;
            }

            @Override
            public int read(byte[] b, int off, int len) throws IOException {
                if (left == 0) return -1;
                int n = in.read(b, off, (int) Math.min(len, left));
                if (n == -1) throw new EOFException("connection closed after " + (length - left)
                        + " of " + length + " body bytes");
                left -= n;
                return n;
            }
        }

        static final class ChunkedInputStream extends InputStream {
            private final InputStream in;
            private long left; // of the current chunk
            private boolean done;

            ChunkedInputStream(InputStream in) {
                this.in = in;
            }

            @Override
            public int read() throws IOException {
                byte[] one = new byte[1];
                return read(one, 0, 1) == -1 ? -1 : one[0] & 0xff;
            }

            @Override
            public int read(byte[] b, int off, int len) throws IOException {
                if (done) return -1;
                if (left == 0) {
                    String size = readLine(in).split(";", 2)[0].trim();
                    try {
                        left = Long.parseLong(size, 16);
                    } catch (NumberFormatException e) {
                        throw new IOException("bad chunk size: " + size);
                    }
                    if (left == 0) {
                        while (!readLine(in).isEmpty()) { /* trailers: not needed */ }
                        done = true;
                        return -1;
                    }
                }
                int n = in.read(b, off, (int) Math.min(len, left));
                if (n == -1) throw new EOFException("connection closed mid-chunk");
                left -= n;
                if (left == 0 && !readLine(in).isEmpty()) throw new IOException("chunk without CRLF");
                return n;
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // The app: found like a shell finds it, started once, sent the signals we receive.
    // ---------------------------------------------------------------------------------------

    static final class Child {
        private final List<String> command;
        private final Log log;
        private final Object lock = new Object();
        private final Http.Abort abort = new Http.Abort();
        /** One thread sends every signal, so they reach the app in the order we got them. */
        private ExecutorService relay; // started with the first signal: most runs get none
        private final List<Signals.Sig> pending = new ArrayList<>(); // arrived before the app ran
        private Process process;
        private int stopSignal;
        private boolean exited;

        Child(List<String> command, Log log) {
            this.command = command;
            this.log = log;
        }

        Http.Abort abortOnStop() {
            return abort;
        }

        int stopSignal() {
            synchronized (lock) {
                return stopSignal;
            }
        }

        /** Sleeps up to nanos; returns true at once if a stop signal arrives. */
        boolean sleepUnlessStopped(long nanos) {
            long until = System.nanoTime() + nanos;
            synchronized (lock) {
                try {
                    for (long left = nanos; stopSignal == 0 && left > 0; left = until - System.nanoTime()) {
                        TimeUnit.NANOSECONDS.timedWait(lock, left);
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                return stopSignal != 0;
            }
        }

        /** Called on the JVM's signal thread: decides, under the lock, what the signal means now. */
        void onSignal(Signals.Sig sig) {
            synchronized (lock) {
                if (exited) {
                    log.info("SIG" + sig.name() + " received after the app exited; ignored");
                } else if (process != null) {
                    relayLocked(sig);
                } else if (sig.stops()) {
                    // Before the app runs, TERM/INT/HUP mean "don't start it": stop the wait now.
                    if (stopSignal == 0) stopSignal = sig.number();
                    lock.notifyAll();
                    abort.abort();
                } else {
                    log.info("SIG" + sig.name() + " received before the app started; kept for it");
                    pending.add(sig);
                }
            }
        }

        private void relayLocked(Signals.Sig sig) {
            if (relay == null) {
                relay = Executors.newSingleThreadExecutor(r -> {
                    Thread t = new Thread(r, "signal-relay");
                    t.setDaemon(true);
                    return t;
                });
            }
            relay.execute(() -> send(sig));
        }

        private void send(Signals.Sig sig) {
            Process p;
            synchronized (lock) {
                p = process;
            }
            if (!p.isAlive()) {
                log.info("SIG" + sig.name() + " not relayed: the app has exited");
                return;
            }
            String failure = Signals.kill(sig.name(), p.pid());
            if (failure == null) log.info("relayed SIG" + sig.name() + " to the app (pid " + p.pid() + ")");
            else log.warn("could not relay SIG" + sig.name() + " to pid " + p.pid() + ": " + failure);
        }

        /** Starts the app unless a stop signal came first, waits for it, returns its exit code. */
        int run() {
            Resolved found = resolve(command.get(0), System.getenv("PATH"));
            if (found.exitCode != 0) {
                log.error(found.problem);
                return found.exitCode;
            }
            List<String> launch = launchCommand(); // outside the lock: it may look at PATH and spawn
            Process p;
            synchronized (lock) {
                if (stopSignal != 0) {
                    log.warn("stopped by SIG" + Signals.name(stopSignal) + " before the app started");
                    return 128 + stopSignal;
                }
                try {
                    p = new ProcessBuilder(launch).inheritIO().start();
                } catch (IOException e) {
                    log.error("cannot run '" + command.get(0) + "': " + e.getMessage());
                    return EXIT_NOT_EXECUTABLE; // found on PATH, so the kernel refused it
                }
                process = p;
                // Signals that arrived before the start go first, in order, ahead of any new one.
                pending.forEach(this::relayLocked);
                pending.clear();
            }
            log.info("started the app, pid " + p.pid() + ": " + command);
            int code = waitUninterruptibly(p);
            synchronized (lock) {
                exited = true;
            }
            // Java reports death by signal N as 128+N, as a shell does; exit(128+N) looks the same.
            log.info("the app exited with code " + code
                    + (code > 128 && code <= 128 + 64 ? " (= 128+SIG" + Signals.name(code - 128) + ")" : ""));
            return code;
        }

        /**
         * The command, behind two safeguards that the JDK cannot set up itself, each used where its
         * tool is on PATH (a missing one is logged with -v):
         * <ul>
         * <li>{@code env --default-signal=QUIT} (GNU coreutils 8.31+), on JDKs before 20 only: they
         *     start children with SIGQUIT blocked (JDK-8234262), and the app's signals are its own;
         * <li>{@code setpriv --pdeathsig TERM} (util-linux): if envoy-preflight is SIGKILLed, the
         *     kernel sends the app TERM instead of leaving it orphaned. The death signal is tied to
         *     the thread that starts the app, which is why run() is only ever called on the main
         *     thread.
         * </ul>
         * Both exec the next word: the app keeps the pid we started.
         */
        private List<String> launchCommand() {
            List<String> launch = new ArrayList<>();
            if (Runtime.version().feature() < 20) {
                String env = genuine("env");
                if (env != null && succeeds(env, "--default-signal=QUIT", "true")) {
                    launch.addAll(List.of(env, "--default-signal=QUIT"));
                } else {
                    log.info("GNU env is not on PATH: on this JDK the app starts with SIGQUIT blocked");
                }
            }
            String setpriv = genuine("setpriv");
            if (setpriv != null) {
                launch.addAll(List.of(setpriv, "--pdeathsig", "TERM", "--"));
            } else {
                log.info("util-linux setpriv is not on PATH: the app would outlive a SIGKILL of envoy-preflight");
            }
            launch.addAll(command);
            return launch;
        }

        /** tool's path on PATH, unless it is a busybox or toybox applet (a link to another name). */
        private static String genuine(String tool) {
            Resolved found = resolve(tool, System.getenv("PATH"));
            try {
                if (found.exitCode() == 0 && found.path().toRealPath().getFileName().toString().equals(tool)) {
                    return found.path().toString();
                }
            } catch (IOException e) {
                // an unreadable link: do without it
            }
            return null;
        }

        private static boolean succeeds(String... command) {
            try {
                Process p = new ProcessBuilder(command).redirectErrorStream(true)
                        .redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
                return p.waitFor(5, TimeUnit.SECONDS) && p.exitValue() == 0;
            } catch (IOException e) {
                return false;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return false;
            }
        }

        private static int waitUninterruptibly(Process p) {
            while (true) {
                try {
                    return p.waitFor();
                } catch (InterruptedException e) {
                    // Nothing interrupts the main thread on purpose; keep waiting for the app.
                }
            }
        }

        /** What a shell would make of the command word: a path to run, or an exit code and why. */
        record Resolved(Path path, int exitCode, String problem) {}

        static Resolved resolve(String word, String pathVariable) {
            if (word.contains("/")) return judge(Path.of(word), word);
            if (word.isEmpty()) return new Resolved(null, EXIT_NOT_FOUND, "command '' not found");
            Path notExecutable = null;
            // As in execvp: an empty PATH entry means the current directory.
            for (String dir : (pathVariable == null ? "/usr/bin:/bin" : pathVariable).split(":", -1)) {
                Path candidate = Path.of(dir.isEmpty() ? "." : dir).resolve(word);
                if (Files.isRegularFile(candidate)) {
                    if (Files.isExecutable(candidate)) return new Resolved(candidate, 0, null);
                    if (notExecutable == null) notExecutable = candidate;
                }
            }
            if (notExecutable != null) {
                return new Resolved(null, EXIT_NOT_EXECUTABLE,
                        "command '" + word + "' found at " + notExecutable + " but it is not executable");
            }
            return new Resolved(null, EXIT_NOT_FOUND, "command '" + word + "' not found on PATH");
        }

        private static Resolved judge(Path path, String word) {
            if (!Files.exists(path)) return new Resolved(null, EXIT_NOT_FOUND, "command '" + word + "' not found");
            if (Files.isDirectory(path)) {
                return new Resolved(null, EXIT_NOT_EXECUTABLE, "command '" + word + "' is a directory");
            }
            if (!Files.isExecutable(path)) {
                return new Resolved(null, EXIT_NOT_EXECUTABLE, "command '" + word + "' is not executable");
            }
            return new Resolved(path, 0, null);
        }
    }

    /** The signals we take over from the JVM, and the one way we send a signal to a process. */
    static final class Signals {
        /**
         * Relayed as the same signal. Never CHLD, URG or PIPE: the Go original forwards those
         * and kills apps that don't expect them. QUIT stays the JVM's (thread dumps).
         */
        enum Sig {
            HUP(true), INT(true), TERM(true), USR1(false), USR2(false), ALRM(false), WINCH(false);

            private final boolean stops;
            private final int number;

            Sig(boolean stops) {
                this.stops = stops;
                this.number = new sun.misc.Signal(name()).getNumber(); // the platform's number
            }

            /** TERM, INT and HUP before the app started mean: don't start it. */
            boolean stops() {
                return stops;
            }

            int number() {
                return number;
            }
        }

        static void relayTo(Child child, Log log) {
            for (Sig sig : Sig.values()) {
                try {
                    sun.misc.Signal signal = new sun.misc.Signal(sig.name());
                    // Replacing the JVM's handler also stops TERM/INT/HUP from shutting the JVM
                    // down: we exit when the app does, with its code.
                    sun.misc.Signal.handle(signal, s -> child.onSignal(sig));
                } catch (IllegalArgumentException e) {
                    // e.g. HUP when started under nohup: the JVM leaves ignored signals ignored.
                    log.info("SIG" + sig.name() + " is not relayed: " + e.getMessage());
                }
            }
        }

        /** Linux's signal names by number (x86 and ARM), for the log: "killed by SIGSEGV". */
        private static final String[] LINUX_NAMES = {null, "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS",
            "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP",
            "TTIN", "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS"};

        static String name(int number) {
            for (Sig sig : Sig.values()) if (sig.number == number) return sig.name();
            return number > 0 && number < LINUX_NAMES.length ? LINUX_NAMES[number] : String.valueOf(number);
        }

        /**
         * Sends SIGname to pid; returns null on success, else why not. The JDK can only send TERM
         * and KILL, so the shell's builtin kill does it: it needs nothing but bash (or sh).
         */
        static String kill(String name, long pid) {
            String shell = Stream.of("bash", "sh")
                    .map(s -> Child.resolve(s, System.getenv("PATH")))
                    .filter(r -> r.exitCode() == 0).map(r -> r.path().toString()).findFirst().orElse(null);
            if (shell == null) return "neither bash nor sh is on PATH to send it";
            try {
                Process kill = new ProcessBuilder(shell, "-c", "kill -s \"$1\" \"$2\"", "kill", name, Long.toString(pid))
                        .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                        .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                        .start();
                String err = new String(kill.getErrorStream().readAllBytes(), StandardCharsets.UTF_8).strip();
                if (!kill.waitFor(5, TimeUnit.SECONDS)) {
                    kill.destroyForcibly();
                    return "kill did not finish";
                }
                return kill.exitValue() == 0 ? null : err.isEmpty() ? "kill exited " + kill.exitValue() : err;
            } catch (IOException e) {
                return e.getMessage();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return "interrupted";
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Quitting the sidecar at exit.
    // ---------------------------------------------------------------------------------------

    static final class Sidecar {
        static final String PILOT_AGENT = "pilot-agent";

        /** One thing to do at exit: it can say what it would do, and do it (true: it worked). */
        interface Step {
            String describe();

            boolean run(Quitter q);
        }

        /** POST a URL; only a 2xx answer counts as success. */
        record Post(URI uri) implements Step {
            public String describe() {
                return "POST " + Redact.uri(uri);
            }

            public boolean run(Quitter q) {
                return q.post(uri);
            }
        }

        /** SIGINT every pilot-agent, as `pkill -SIGINT pilot-agent`; none signalled: POST admin. */
        record Pkill(URI adminQuit) implements Step {
            public String describe() {
                return "SIGINT " + PILOT_AGENT + ", else POST " + Redact.uri(adminQuit);
            }

            public boolean run(Quitter q) {
                return q.sigintPilotAgents() || q.post(adminQuit);
            }
        }

        /** Try first; if it fails, orElse. */
        record Fallback(Step first, Step orElse) implements Step {
            public String describe() {
                return first.describe() + "; if that fails: " + orElse.describe();
            }

            public boolean run(Quitter q) {
                return first.run(q) || orElse.run(q);
            }
        }

        /** What happens at exit: the steps in order, or why there are none. */
        record Plan(List<Step> steps, String nothingBecause) {
            String describe() {
                if (steps.isEmpty()) return "quit nothing (" + nothingBecause + ")";
                return String.join("; then ", steps.stream().map(Step::describe).toList());
            }
        }

        static Plan plan(Config config, int exitCode) {
            if (config.adminApi() == null) return new Plan(List.of(), "no admin API configured");
            if (!Urls.isLoopback(config.adminApi())) {
                return new Plan(List.of(), "the admin API host " + config.adminApi().getHost()
                        + " is not loopback, so the sidecar is not ours to quit");
            }
            if (config.neverKillIstio()) return new Plan(List.of(), "never-kill-istio is set");
            if (config.neverKillIstioOnFailure() && exitCode != 0) {
                return new Plan(List.of(), "never-kill-istio-on-failure is set and the exit code is " + exitCode);
            }
            List<Step> steps = new ArrayList<>();
            config.genericQuitEndpoints().forEach(uri -> steps.add(new Post(uri)));
            Step pkill = new Pkill(Urls.resolve(config.adminApi(), "quitquitquit"));
            if (config.istioQuitApi() == null) {
                steps.add(pkill);
            } else {
                Step istio = new Post(Urls.resolve(config.istioQuitApi(), "quitquitquit"));
                steps.add(config.istioFallbackPkill() ? new Fallback(istio, pkill) : istio);
            }
            return new Plan(List.copyOf(steps), null);
        }

        static void quit(Config config, int exitCode, Log log) {
            Plan plan = plan(config, exitCode);
            if (plan.steps().isEmpty()) {
                log.info("quitting nothing: " + plan.nothingBecause());
                return;
            }
            Quitter quitter = new Quitter(config.quitTimeout(), log);
            for (Step step : plan.steps()) {
                step.run(quitter); // each step logs its own outcome; a failure never stops the next
            }
        }

        /** Does the steps' I/O; every request bounded by the quit timeout, failures only logged. */
        static final class Quitter {
            private final Duration timeout;
            private final Log log;

            Quitter(Duration timeout, Log log) {
                this.timeout = timeout;
                this.log = log;
            }

            boolean post(URI uri) {
                long start = System.nanoTime();
                try {
                    int status = Http.exchange("POST", uri, timeout, new Http.Abort(), (s, body) -> s);
                    long ms = (System.nanoTime() - start) / 1_000_000;
                    boolean ok = status / 100 == 2;
                    String line = "POST " + Redact.uri(uri) + ": HTTP " + status + " in " + ms + " ms";
                    if (ok) log.info(line);
                    else log.warn(line);
                    return ok;
                } catch (IOException e) {
                    log.warn("POST " + Redact.uri(uri) + " failed: " + Http.describe(e, timeout));
                    return false;
                }
            }

            /** True if at least one pilot-agent was sent SIGINT. */
            boolean sigintPilotAgents() {
                List<Long> pids = processesNamed(PILOT_AGENT);
                if (pids.isEmpty()) {
                    log.info("no " + PILOT_AGENT + " process is visible (shareProcessNamespace?)");
                    return false;
                }
                boolean any = false;
                for (long pid : pids) {
                    String failure = Signals.kill("INT", pid);
                    if (failure == null) log.info("sent SIGINT to " + PILOT_AGENT + " (pid " + pid + ")");
                    else log.warn("could not SIGINT " + PILOT_AGENT + " (pid " + pid + "): " + failure);
                    any |= failure == null;
                }
                return any;
            }
        }

        /** Processes whose /proc/PID/comm is exactly name (pkill matches the same field). */
        static List<Long> processesNamed(String name) {
            List<Long> pids = new ArrayList<>();
            long self = ProcessHandle.current().pid();
            try (Stream<Path> entries = Files.list(Path.of("/proc"))) {
                entries.filter(p -> p.getFileName().toString().chars().allMatch(Character::isDigit))
                        .forEach(p -> {
                            try {
                                long pid = Long.parseLong(p.getFileName().toString());
                                if (pid != self && Files.readString(p.resolve("comm")).strip().equals(name)) {
                                    pids.add(pid);
                                }
                            } catch (IOException | RuntimeException e) {
                                // the process ended while we looked: not a candidate
                            }
                        });
            } catch (IOException e) {
                return List.of(); // no /proc: nothing we can signal
            }
            return pids;
        }
    }
}
