#!/bin/sh
# The sample app: a batch job that needs the network through the sidecar.
echo "job: started, pid $$"
trap 'echo "job: got SIGTERM, cleaning up"; exit 143' TERM
sleep "${JOB_SECONDS:-2}"
echo "job: done"
