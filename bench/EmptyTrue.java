///usr/bin/env jbang "$0" "$@" ; exit $?
//JAVA 17+
//DESCRIPTION The benchmark's reference: a bare Java program that runs its arguments as a command
//DESCRIPTION and exits with its code, and nothing else. What any JVM wrapper costs at the least.

public class EmptyTrue {
    public static void main(String[] args) throws Exception {
        System.exit(new ProcessBuilder(args).inheritIO().start().waitFor());
    }
}
