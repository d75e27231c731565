///usr/bin/env jbang "$0" "$@" ; exit $?
//JAVA 17+
//DEPS org.junit.jupiter:junit-jupiter:5.14.1
//DEPS org.junit.platform:junit-platform-launcher:1.14.1
//DEPS org.yaml:snakeyaml:2.5
//SOURCES ../EnvoyPreflight.java
//SOURCES ../examples/local/FakeEnvoy.java
//SOURCES TestSupport.java
//SOURCES UnitTests.java
//SOURCES IntegrationTests.java
//SOURCES ReliabilityTests.java
//SOURCES SidecarsTests.java
//SOURCES LauncherTests.java
//SOURCES ContainerTests.java
//SOURCES BadInputTests.java
//SOURCES EverySidecarTests.java
//SOURCES ExamplesTests.java
//SOURCES LogEventsTests.java
//SOURCES DocsTests.java
//SOURCES JobFinishesTests.java
//SOURCES RecipesTests.java
//SOURCES RealSidecarsTests.java
//RUNTIME_OPTIONS -Xmx512m
//DESCRIPTION Runs envoy-preflight's JUnit tests and prints "N passed, N failed, N skipped".

import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.engine.discovery.DiscoverySelectors;
import org.junit.platform.engine.FilterResult;
import org.junit.platform.engine.discovery.ClassNameFilter;
import org.junit.platform.launcher.PostDiscoveryFilter;
import org.junit.platform.launcher.TagFilter;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;

import java.nio.file.Path;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Usage: {@code ./jbang test [--tag TAG] [NAME-SUBSTRING]}: every test, or those with the tag, or
 * those whose name contains the substring. Exits 1 if any test failed or none ran.
 */
public class RunTests {
    public static void main(String[] args) throws Exception {
        Path jar = Path.of(RunTests.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        LauncherDiscoveryRequestBuilder request = LauncherDiscoveryRequestBuilder.request()
                .selectors(DiscoverySelectors.selectClasspathRoots(Set.of(jar)))
                // JUnit's own discovery would also pick up classes of the sourced scripts: only ours.
                .filters(ClassNameFilter.includeClassNamePatterns(".*Tests"));
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--tag" -> request.filters(TagFilter.includeTags(args[++i]));
                default -> {
                    String only = args[i];
                    // classes stay in; each test method or parameterized template is kept by name
                    request.filters((PostDiscoveryFilter) d -> FilterResult.includedIf(
                            Set.of("engine", "class", "nested-class").contains(d.getUniqueId().getLastSegment().getType())
                                    || d.getUniqueId().toString().contains(only)));
                }
            }
        }

        AtomicInteger passed = new AtomicInteger();
        AtomicInteger failed = new AtomicInteger();
        AtomicInteger skipped = new AtomicInteger();
        TestExecutionListener report = new TestExecutionListener() {
            private final java.util.Map<String, Long> started = new java.util.concurrent.ConcurrentHashMap<>();

            @Override
            public void executionStarted(TestIdentifier id) {
                started.put(id.getUniqueId(), System.nanoTime());
            }

            @Override
            public void executionSkipped(TestIdentifier id, String reason) {
                if (!id.isTest()) return;
                skipped.incrementAndGet();
                System.out.println("SKIP " + name(id) + ": " + reason);
            }

            @Override
            public void executionFinished(TestIdentifier id, TestExecutionResult result) {
                if (!id.isTest()) {
                    if (result.getStatus() == TestExecutionResult.Status.FAILED) {
                        failed.incrementAndGet();
                        System.out.println("FAIL " + id.getDisplayName() + " (container)");
                        result.getThrowable().ifPresent(t -> t.printStackTrace(System.out));
                    }
                    return;
                }
                long ms = (System.nanoTime() - started.getOrDefault(id.getUniqueId(), System.nanoTime())) / 1_000_000;
                if (result.getStatus() == TestExecutionResult.Status.SUCCESSFUL) {
                    passed.incrementAndGet();
                    System.out.println("PASS " + name(id) + " (" + ms + " ms)");
                } else if (result.getStatus() == TestExecutionResult.Status.ABORTED) {
                    // an assumption that does not hold here (no second JDK, no namespaces): skipped, with why
                    skipped.incrementAndGet();
                    System.out.println("SKIP " + name(id) + ": " + result.getThrowable().map(Throwable::getMessage).orElse("aborted"));
                } else {
                    failed.incrementAndGet();
                    System.out.println("FAIL " + name(id) + " (" + ms + " ms)");
                    result.getThrowable().ifPresent(t -> t.printStackTrace(System.out));
                }
            }

            private String name(TestIdentifier id) {
                String uid = id.getUniqueId();
                int cls = uid.indexOf("[class:");
                String owner = cls < 0 ? "" : uid.substring(cls + 7, uid.indexOf(']', cls)) + ".";
                return owner + id.getDisplayName();
            }
        };
        LauncherFactory.create().execute(request.build(), report);
        System.out.println();
        System.out.println(passed + " passed, " + failed + " failed, " + skipped + " skipped");
        System.exit(failed.get() > 0 || passed.get() == 0 ? 1 : 0);
    }
}
