#!/bin/sh
# The jar image's entrypoint: `java -jar` in front of the app, prepared as the ./jbang launcher
# prepares the tool's JVM (see it for why): the JVM options variables are the app's, and are moved
# aside for the tool to give back; a locale that is not UTF-8 in fact (`locale charmap`: en_US.UTF-8
# where it is not installed is ASCII) becomes C.UTF-8 for the JVM alone.
here=$(dirname -- "$0")
moved=
for name in JAVA_TOOL_OPTIONS JDK_JAVA_OPTIONS _JAVA_OPTIONS; do
  if eval "[ -n \"\${$name+set}\" ]"; then
    eval "export ENVOY_PREFLIGHT_APP_$name=\"\$$name\""
    unset "$name"
    moved="$moved $name"
  fi
done
case $(locale charmap 2>/dev/null) in
  [Uu][Tt][Ff]-8 | [Uu][Tt][Ff]8) ;;
  *)
    [ -n "${LC_ALL+set}" ] && export "ENVOY_PREFLIGHT_APP_LC_ALL=$LC_ALL"
    export LC_ALL=C.UTF-8
    moved="$moved LC_ALL"
    ;;
esac
[ -n "$moved" ] && export ENVOY_PREFLIGHT_MOVED="${moved# }"
archive=
[ -r "$here/envoy-preflight.jsa" ] && archive="-XX:SharedArchiveFile=$here/envoy-preflight.jsa"
# shellcheck disable=SC2086 # the options are a list of words on purpose
exec java $PREFLIGHT_JAVA_OPTIONS $archive -jar "$here/envoy-preflight.jar" -- "$@"
