"""An Airflow DAG whose KubernetesPodOperator pod has a Cloud SQL Auth Proxy sidecar.

Why the tool is needed here: KubernetesPodOperator handles a sidecar only when it is Istio's.
It looks for a container named istio-proxy; where there is one, it waits for the `base`
container alone and then runs `curl -X POST localhost:15020/quitquitquit` in istio-proxy itself
(apache/airflow #33306). Any other sidecar keeps the pod Running, and the task waits for the pod
forever (apache/airflow #39693, open). So `base` runs envoy-preflight: it waits until the proxy
can serve connections, runs the job, and quits the proxy, so the pod completes.

Why --exit-zero-on-sigterm: the proxy's /quitquitquit ends it like a SIGTERM, and since v2 it
then exits 143 unless told otherwise. Without a pod-level sidecar type, the pod is Succeeded only
if every container exits 0, and KubernetesPodOperator fails the task on a Failed pod
(cloud-sql-proxy #1803, #1870, #1941).

Only the values below are read by the tests (tests/RecipesTests.java).
"""
from datetime import datetime

from airflow import DAG
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import models as k8s

# The base container's environment: envoy-preflight's settings, the proxy's two ports.
PREFLIGHT_ENV = {
    "GENERIC_READY_ENDPOINTS": "http://127.0.0.1:9090/readiness",
    "GENERIC_QUIT_ENDPOINTS": "http://127.0.0.1:9091/quitquitquit",
    "QUIT_WITHOUT_ENVOY_TIMEOUT": "5m",
    "ENVOY_PREFLIGHT_LOGGING": "true",
}

# The proxy: readiness on --http-port, /quitquitquit on --admin-port, exit 0 when quit.
CLOUD_SQL_PROXY_ARGS = [
    "--health-check",
    "--http-port=9090",
    "--quitquitquit",
    "--admin-port=9091",
    "--exit-zero-on-sigterm",
    "--port=5432",
    "my-project:europe-west1:reports",
]

with DAG(dag_id="nightly_report", start_date=datetime(2026, 1, 1), schedule="@daily", catchup=False):
    KubernetesPodOperator(
        task_id="report",
        name="nightly-report",
        # Built from examples/docker/Dockerfile.jar: the tool in front of the job.
        image="registry.example.com/envoy-preflight-demo-jar:1.0.0",
        cmds=["/opt/envoy-preflight/entrypoint.sh"],
        arguments=["/app/job.sh"],
        env_vars=PREFLIGHT_ENV,
        # The operator's own container is `base`; the template adds the sidecar beside it.
        full_pod_spec=k8s.V1Pod(
            spec=k8s.V1PodSpec(
                containers=[
                    k8s.V1Container(name="base"),
                    k8s.V1Container(
                        name="cloud-sql-proxy",
                        image="gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.14.1",
                        args=CLOUD_SQL_PROXY_ARGS,
                    ),
                ],
            ),
        ),
        on_finish_action="delete_pod",
        get_logs=True,
    )
