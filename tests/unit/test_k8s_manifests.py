"""k8s/: every overlay rendered with kustomize and validated, strictly, against the Flink
Kubernetes Operator's CRDs (../shared/k8s-crds) and Kubernetes' own schemas with kubeconform;
every job's entry point and arguments parsed by that job's own parser, with the environment its
pods get; the Flink options known to Flink 2.2.1; the Dockerfile checked without building it.

No cluster and no Docker engine here (k8s/README.md says what that leaves unverified). The tools
install themselves on first use (tests/k8s_tools.py): kubeconform with `go install` (a few
minutes, once), Kubernetes' schemas from the kubernetes-validate wheel (pip download, once).
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from tests import k8s_tools
from vigil import jars
from vigil.flink_env import FlinkSettings
from vigil.paths import PROJECT_ROOT

K8S = PROJECT_ROOT / "k8s"
OVERLAYS = ("dev", "prod", "prod-eu")
PRODUCTION = ("prod", "prod-eu")
SNAPSHOTS = K8S / "snapshots"
IMAGE_ROOT = "/opt/vigil/"            # where the Dockerfile puts the checkout
VENV_PYTHON = "/opt/venv/bin/python"  # the Dockerfile's virtualenv
JOBS = {  # FlinkDeployment -> (script, its config class, the flags that select this deployment's job)
    "vigil-ingest": ("jobs/ingest.py", "jobs.ingest:IngestConfig", ()),
    "vigil-fraud-exact": ("jobs/fraud_detection.py", "jobs.fraud_config:FraudConfig", ("--paths", "exact")),
    "vigil-fraud-fast": ("jobs/fraud_detection.py", "jobs.fraud_config:FraudConfig", ("--paths", "fast")),
    "vigil-analytics": ("jobs/analytics.py", "jobs.analytics_config:AnalyticsConfig", ()),
}
SITE_KEYS = {"VIGIL_STATE_BUCKET", "VIGIL_S3_REGION", "VIGIL_JDBC_URL", "VIGIL_BOOTSTRAP", "VIGIL_SCHEMA_REGISTRY_URL"}
# The operator's options the manifests use, each read in the operator's sources
# (flink-kubernetes-operator: KubernetesOperatorConfigOptions.java, AutoScalerOptions.java) and its
# documentation (custom-resource/snapshots.md): Flink's jars do not have them.
OPERATOR_OPTIONS = {
    "kubernetes.operator.periodic.savepoint.interval", "kubernetes.operator.savepoint.history.max.count",
    "kubernetes.operator.savepoint.history.max.age", "kubernetes.operator.savepoint.dispose-on-delete",
    "kubernetes.operator.savepoint.format.type", "kubernetes.operator.job.upgrade.last-state-fallback.enabled",
    "job.autoscaler.enabled", "job.autoscaler.scaling.enabled", "job.autoscaler.metrics.window",
    "job.autoscaler.stabilization.interval", "job.autoscaler.target.utilization",
    "job.autoscaler.target.utilization.boundary", "job.autoscaler.restart.time",
    "job.autoscaler.restart.time-tracking.enabled", "job.autoscaler.catch-up.duration",
    "job.autoscaler.scale-down.max-factor", "job.autoscaler.scale-up.grace-period",
    "job.autoscaler.memory.tuning.enabled", "job.autoscaler.vertex.max-parallelism",
}
# Options under a prefix whose rest Flink does not declare: the S3 plugin passes s3.* to its
# file system; a reporter's options are metrics.reporter.<name>.*.
PASSED_THROUGH = ("s3.", "metrics.reporter.")


# ---- rendering and the tools ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("rendered")
    files = {}
    for overlay in OVERLAYS:
        files[overlay] = out / f"{overlay}.yaml"
        files[overlay].write_text(k8s_tools.render(K8S / "overlays" / overlay))
    return files


@pytest.fixture(scope="module")
def docs(rendered) -> dict[str, list[dict]]:
    return {overlay: [d for d in yaml.safe_load_all(path.read_text()) if d] for overlay, path in rendered.items()}


def deployments(documents: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == "FlinkDeployment"}


def site(documents: list[dict]) -> dict[str, str]:
    return next(d["data"] for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "vigil-site")


@pytest.fixture(scope="module")
def crd_schema_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("crd-schemas")
    kinds = k8s_tools.crd_schemas(out, k8s_tools.object_meta_schema())
    assert {"FlinkDeployment", "FlinkSessionJob", "FlinkStateSnapshot"} <= set(kinds)
    return out


def kubeconform(files: list[Path], crd_schema_dir: Path) -> list[dict]:
    return k8s_tools.validate(files, crd_schema_dir)


def not_valid(results: list[dict]) -> list[str]:
    return [f"{r['filename']}: {r['kind']} {r['name']}: {r['status']} {r['msg']}" for r in results
            if r["status"] != "statusValid"]


# ---- schema validation ---------------------------------------------------------------------------

def test_every_rendered_manifest_is_valid_against_the_crds_and_kubernetes_schemas(rendered, docs, crd_schema_dir, tmp_path):
    # the snapshot examples as they are, and every deployment with the restore patch applied
    restore = yaml.safe_load((SNAPSHOTS / "restore-patch.yaml").read_text())
    patched = [merge_patch(d, restore) for d in deployments(docs["prod"]).values()]
    restored = tmp_path / "restored.yaml"
    restored.write_text(yaml.safe_dump_all(patched))
    examples = sorted(p for p in SNAPSHOTS.glob("*.yaml") if p.name != "restore-patch.yaml")
    results = kubeconform([*rendered.values(), *examples, restored], crd_schema_dir)

    assert not_valid(results) == []
    expected = sum(len(d) for d in docs.values()) + len(examples) + len(patched)
    assert len(results) == expected
    kinds = {r["kind"] for r in results}
    assert {"FlinkDeployment", "FlinkStateSnapshot", "Namespace", "ServiceAccount", "Role", "RoleBinding",
            "ConfigMap", "PersistentVolumeClaim"} <= kinds


def test_the_validation_fails_on_unknown_fields_and_wrong_values(docs, crd_schema_dir, tmp_path):
    """The validator is strict: each broken copy must be refused (a schema that accepted anything
    would pass the test above)."""
    ingest = deployments(docs["prod"])["vigil-ingest"]
    role_binding = next(d for d in docs["prod"] if d["kind"] == "RoleBinding")
    broken = {
        # restoring as the operator's documentation shows it; this CRD has initialSavepointPath instead
        "unknown job field": merge_patch(ingest, {"spec": {"job": {"initialStateReference": {"path": "s3://b/sp"}}}}),
        "flinkVersion not in the enum": merge_patch(ingest, {"spec": {"flinkVersion": "v2_9"}}),
        "upgradeMode not in the enum": merge_patch(ingest, {"spec": {"job": {"upgradeMode": "keep-state"}}}),
        "parallelism as a string": merge_patch(ingest, {"spec": {"job": {"parallelism": "2"}}}),
        "unknown metadata field": merge_patch(ingest, {"metadata": {"label": {"a": "b"}}}),
        "unknown container field in the pod template": merge_patch(
            ingest, {"spec": {"podTemplate": {"spec": {"containers": [{"name": "flink-main-container", "envFrmo": []}]}}}}),
        "unknown field in a RoleBinding subject": merge_patch(
            role_binding, {"subjects": [{"kind": "ServiceAccount", "name": "vigil-flink", "namspace": "x"}]}),
    }
    for name, doc in broken.items():
        doc["metadata"]["name"] = re.sub(r"\W+", "-", name)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump_all(broken.values()))
    results = {r["name"]: r for r in kubeconform([path], crd_schema_dir)}
    for name in broken:
        result = results[re.sub(r"\W+", "-", name)]
        assert result["status"] == "statusInvalid", f"{name}: {result['status']} {result['msg']}"


def merge_patch(document: dict, patch: dict) -> dict:
    """RFC 7386 JSON merge patch (what `kubectl patch --type merge` sends), on a copy."""
    out = copy.deepcopy(document)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_patch(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# ---- what each overlay deploys -------------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_deploys_every_job_in_its_own_namespace_with_its_site_settings(docs, overlay):
    documents = docs[overlay]
    namespace = next(d["metadata"]["name"] for d in documents if d["kind"] == "Namespace")
    assert namespace == f"vigil-{overlay}"
    assert all(d["metadata"].get("namespace") == namespace for d in documents if d["kind"] != "Namespace")
    assert set(deployments(documents)) == set(JOBS)
    settings = site(documents)
    assert set(settings) == SITE_KEYS
    text = yaml.safe_dump_all(documents)
    assert "SET-BY-OVERLAY" not in text
    bucket = settings["VIGIL_STATE_BUCKET"]
    for name, deployment in deployments(documents).items():
        conf = deployment["spec"]["flinkConfiguration"]
        for key in ("high-availability.storageDir", "execution.checkpointing.dir", "execution.checkpointing.savepoint-dir"):
            assert conf[key].startswith(f"s3://{bucket}/vigil/"), (name, key, conf[key])
        assert conf["s3.endpoint.region"] == settings["VIGIL_S3_REGION"]
        assert deployment["spec"]["image"].startswith("registry.example.com/vigil/flink-job:")
    # the regions share nothing: bucket, namespace, database
    if overlay == "prod-eu":
        other = site(docs["prod"])
        assert settings["VIGIL_STATE_BUCKET"] != other["VIGIL_STATE_BUCKET"]
        assert settings["VIGIL_S3_REGION"] != other["VIGIL_S3_REGION"]
        assert settings["VIGIL_JDBC_URL"] != other["VIGIL_JDBC_URL"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_deployment_runs_its_job_through_pythondriver_with_savepoint_upgrades_and_ha(docs, overlay):
    documents = docs[overlay]
    accounts = {d["metadata"]["name"] for d in documents if d["kind"] == "ServiceAccount"}
    claims = {d["metadata"]["name"] for d in documents if d["kind"] == "PersistentVolumeClaim"}
    import pyflink
    flink_python_jar = f"flink-python-{pyflink.__version__}.jar"
    for name, deployment in deployments(documents).items():
        spec = deployment["spec"]
        job, conf = spec["job"], spec["flinkConfiguration"]
        script = JOBS[name][0]
        assert spec["flinkVersion"] == "v2_2"
        assert job["entryClass"] == "org.apache.flink.client.python.PythonDriver"
        assert job["jarURI"] == f"local:///opt/flink/lib/{flink_python_jar}"
        assert job["args"][:2] == ["-py", IMAGE_ROOT + script]
        assert (PROJECT_ROOT / script).is_file()
        assert job["upgradeMode"] == "savepoint" and job["state"] == "running"
        assert conf["high-availability.type"] == "kubernetes"
        assert spec["serviceAccount"] in accounts
        for volume in spec["podTemplate"]["spec"].get("volumes", []):
            assert volume["persistentVolumeClaim"]["claimName"] in claims
        # savepoints: periodic, a bounded history, deleted with it, restorable into any backend
        assert duration_s(conf["kubernetes.operator.periodic.savepoint.interval"]) > 0
        assert int(conf["kubernetes.operator.savepoint.history.max.count"]) >= 2
        assert duration_s(conf["kubernetes.operator.savepoint.history.max.age"]) >= duration_s(
            conf["kubernetes.operator.periodic.savepoint.interval"])
        assert conf["kubernetes.operator.savepoint.format.type"] == "CANONICAL"
        # autoscaler: on, within the job's fixed max parallelism (it bounds rescaling: FlinkSettings)
        assert conf["job.autoscaler.enabled"] == "true"
        assert job["parallelism"] <= int(conf["job.autoscaler.vertex.max-parallelism"]) <= FlinkSettings().max_parallelism
        # Python: the image's venv, one slot per TaskManager (thread mode shares one GIL per JVM)
        assert conf["python.executable"] == conf["python.client.executable"] == VENV_PYTHON
        assert conf["metrics.reporter.python_warmup.python"] == VENV_PYTHON
        assert conf["taskmanager.numberOfTaskSlots"] == "1"
        assert conf["metrics.reporter.prom.port"] == spec["podTemplate"]["metadata"]["annotations"]["prometheus.io/port"]
        container = spec["podTemplate"]["spec"]["containers"][0]
        assert container["name"] == "flink-main-container"  # the name the operator merges into
        assert {"name": "vigil-site"} in [ref.get("configMapRef") for ref in container["envFrom"]]
        if overlay in PRODUCTION:
            assert spec["jobManager"]["replicas"] >= 2, f"{name}: no standby JobManager"
            assert conf["job.autoscaler.scaling.enabled"] == "true"


def duration_s(text: str) -> int:
    """Flink's durations as the manifests write them ('1h', '48h', '10m', '30 s').

    >>> duration_s("48h"), duration_s("10 m"), duration_s("30s")
    (172800, 600, 30)
    """
    match = re.fullmatch(r"(\d+)\s*(s|m|h|d)", text.strip())
    assert match, f"not a duration: {text!r}"
    return int(match[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]


# ---- the jobs' own parsers ----------------------------------------------------------------------------

PARSE = r"""
import importlib, json, sys
out = {}
for name, (target, args) in json.loads(sys.argv[1]).items():
    module, cls = target.split(":")
    config = getattr(importlib.import_module(module), cls).from_args(args)
    f = config.flink
    out[name] = {"parallelism": f.parallelism, "checkpoint_dir": f.checkpoint_dir,
                 "checkpoint_interval_ms": f.checkpoint_interval_ms, "state_backend": f.state_backend,
                 "python_mode": f.python_mode, "bootstrap": config.bootstrap,
                 "schema_registry_url": config.schema_registry_url,
                 "group_id": config.group_id, "job_name": getattr(config, "job_name", None),
                 "transactional_id_prefix": getattr(config, "transactional_id_prefix", None),
                 "model_dir": getattr(getattr(config, "models", None), "snapshot_dir", None),
                 "jdbc": [getattr(config, k, None) for k in ("jdbc_url", "jdbc_user", "jdbc_password")]}
print(json.dumps(out))
"""


def pod_environment(documents: list[dict], deployment: dict) -> dict[str, str]:
    """The variables the job's container gets: the ConfigMaps it reads whole, then its own env
    (a Secret's value stands in as '<secret name>/<key>')."""
    container = deployment["spec"]["podTemplate"]["spec"]["containers"][0]
    env = {}
    for ref in container.get("envFrom", []):
        if "configMapRef" in ref:
            env.update(next(d["data"] for d in documents
                            if d["kind"] == "ConfigMap" and d["metadata"]["name"] == ref["configMapRef"]["name"]))
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            secret = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = f"{secret['name']}/{secret['key']}"
    return env


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_job_argument_is_accepted_by_the_jobs_parser_with_the_pods_environment(docs, overlay, tmp_path):
    documents = docs[overlay]
    parsed = {}
    for name, deployment in deployments(documents).items():
        script, target, selecting = JOBS[name]
        # the script's main() parses its argv with this config class
        script_module = importlib.import_module("jobs." + Path(script).stem)
        assert f"{target.split(':')[1]}.from_args(argv)" in inspect.getsource(script_module.main)
        args = deployment["spec"]["job"]["args"]
        assert all(flag in args for flag in selecting), (name, selecting)
        env = {"PATH": "/usr/bin:/bin", "VIGIL_STATE": str(tmp_path / "state"), "VIGIL_CACHE": str(tmp_path / "cache"),
               "PYTHONPATH": str(PROJECT_ROOT), **pod_environment(documents, deployment)}
        # PythonDriver hands the program everything after "-py <script>"
        request = json.dumps({name: [target, args[2:]]})
        result = subprocess.run([sys.executable, "-c", PARSE, request], capture_output=True, text=True,
                                env=env, cwd=tmp_path, timeout=120)
        assert result.returncode == 0, f"{overlay} {name}: the job's parser refused its arguments:\n{result.stderr[-2000:]}"
        parsed[name] = json.loads(result.stdout.strip().splitlines()[-1])[name]

    settings = site(documents)
    for name, config in parsed.items():
        deployment = deployments(documents)[name]
        spec, conf = deployment["spec"], deployment["spec"]["flinkConfiguration"]
        assert config["bootstrap"] == settings["VIGIL_BOOTSTRAP"], name
        assert config["schema_registry_url"] == settings["VIGIL_SCHEMA_REGISTRY_URL"], name
        # the job sets these itself (vigil/flink_env.py): they must agree with the deployment's
        assert config["checkpoint_dir"] == conf["execution.checkpointing.dir"], name
        assert config["parallelism"] == spec["job"]["parallelism"], name
        assert config["python_mode"] == "thread", name
    assert parsed["vigil-ingest"]["state_backend"] == "rocksdb"
    assert parsed["vigil-analytics"]["state_backend"] == "rocksdb"  # ADR 0011 at production volumes
    # the two fraud jobs: one each of the exact and the fast path, never sharing a consumer group or
    # transactional ids (two producers with one transactional id fence each other)
    exact, fast = parsed["vigil-fraud-exact"], parsed["vigil-fraud-fast"]
    assert (exact["job_name"], fast["job_name"]) == ("vigil-fraud", "vigil-fraud-fast")
    assert exact["group_id"] != fast["group_id"] and exact["transactional_id_prefix"] != fast["transactional_id_prefix"]
    mount = deployments(documents)["vigil-fraud-exact"]["spec"]["podTemplate"]["spec"]["containers"][0]["volumeMounts"][0]
    assert exact["model_dir"] == fast["model_dir"] == mount["mountPath"]
    assert parsed["vigil-analytics"]["jdbc"] == [settings["VIGIL_JDBC_URL"], "vigil_writer", "vigil-serving-writer/password"]
    assert len({c["checkpoint_dir"] for c in parsed.values()}) == len(parsed)


def test_an_argument_the_parser_does_not_know_is_refused(tmp_path):
    """The check above can fail: a misspelt flag makes the job's parser exit with an error."""
    request = json.dumps({"vigil-ingest": ["jobs.ingest:IngestConfig", ["--checkpoint-dri", "s3://b/c"]]})
    result = subprocess.run([sys.executable, "-c", PARSE, request], capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "VIGIL_STATE": str(tmp_path), "PYTHONPATH": str(PROJECT_ROOT)},
                            cwd=tmp_path)
    assert result.returncode == 2 and "unrecognized arguments: --checkpoint-dri" in result.stderr


# ---- Flink options ----------------------------------------------------------------------------------------

def flink_option_keys(keys: set[str]) -> set[str]:
    """The subset of `keys` that Flink 2.2.1 declares: option classes of the apache-flink wheel's
    jars (the image's Flink version) hold each key as a string constant."""
    import pyflink
    home = Path(pyflink.__file__).parent
    encoded = {key: len(key.encode()).to_bytes(2, "big") + key.encode() for key in keys}  # a class file's UTF8 entry
    found = set()
    for jar in sorted((home / "lib").glob("*.jar")) + sorted((home / "opt").glob("*.jar")):
        with zipfile.ZipFile(jar) as archive:
            for name in archive.namelist():
                if name.startswith("org/apache/flink/") and name.endswith("Options.class"):
                    data = archive.read(name)
                    found.update(key for key, entry in encoded.items() if key not in found and entry in data)
    return found


def test_every_flink_option_in_the_manifests_exists_in_flink_or_the_operator(docs):
    keys = {key for documents in docs.values() for d in deployments(documents).values()
            for key in d["spec"]["flinkConfiguration"]}
    operator = {k for k in keys if k.startswith(("kubernetes.operator.", "job.autoscaler."))}
    assert operator <= OPERATOR_OPTIONS, operator - OPERATOR_OPTIONS
    flink = {k for k in keys - operator if not k.startswith(PASSED_THROUGH)}
    assert flink - flink_option_keys(flink) == set()
    for documents in docs.values():
        for deployment in deployments(documents).values():
            assert all(isinstance(v, str) for v in deployment["spec"]["flinkConfiguration"].values())


def test_a_misspelt_flink_option_is_not_found():
    assert flink_option_keys({"high-availability.type", "high-availabilty.type", "state.checkpoint.dir"}) == {
        "high-availability.type"}


def test_java_17_module_flags_are_those_of_flinks_own_configuration(docs):
    import pyflink
    config = yaml.safe_load((Path(pyflink.__file__).parent / "conf" / "config.yaml").read_text())
    expected = config["env"]["java"]["opts"]["all"]
    for documents in docs.values():
        for deployment in deployments(documents).values():
            assert deployment["spec"]["flinkConfiguration"]["env.java.opts.all"] == expected


def test_warmup_reporter_class_is_in_vigil_runtime():
    factory = "vigil.flink.runtime.PythonWarmupReporterFactory"
    common = yaml.safe_load((K8S / "base" / "common.yaml").read_text())
    assert common["spec"]["flinkConfiguration"]["metrics.reporter.python_warmup.factory.class"] == factory
    source = PROJECT_ROOT / "java" / "vigil-runtime" / "src" / "main" / "java" / (factory.replace(".", "/") + ".java")
    assert source.is_file()


# ---- the base files themselves ------------------------------------------------------------------------------

def test_no_job_file_sets_what_the_common_patch_overrides():
    common = yaml.safe_load((K8S / "base" / "common.yaml").read_text())["spec"]
    job_files = [path for path in sorted((K8S / "base").glob("*.yaml")) if path.name != "common.yaml"
                 and re.search(r"^kind: FlinkDeployment$", path.read_text(), re.M)]
    assert len(job_files) == len(JOBS)
    for path in job_files:
        document = yaml.safe_load(path.read_text())
        spec = document["spec"]
        assert not set(spec.get("flinkConfiguration", {})) & set(common["flinkConfiguration"]), path.name
        assert not set(spec.get("job", {})) & set(common["job"]), path.name
        assert not set(spec) & (set(common) - {"flinkConfiguration", "job"}), path.name


def test_each_jobs_sizing_cites_figures_that_are_in_the_benchmarks():
    """Every job file says which measured figures sized it ('# benchmarks: a | b'), and each is
    quoted from docs/benchmarks.md."""
    report = (PROJECT_ROOT / "docs" / "benchmarks.md").read_text()
    for name in ("ingest", "fraud-exact", "fraud-fast", "analytics"):
        text = (K8S / "base" / f"{name}.yaml").read_text()
        cited = re.search(r"^# benchmarks: (.+)$", text, re.M)
        assert cited, f"{name}.yaml cites no figure"
        for figure in cited[1].split(" | "):
            assert figure.strip() in report, f"{name}.yaml: {figure!r} is not in docs/benchmarks.md"


# ---- the Dockerfile, checked without building it ---------------------------------------------------------------

def dockerfile_stages() -> list[tuple[str, list[tuple[str, str]]]]:
    """[(stage name or base image, [(INSTRUCTION, arguments)])], line continuations joined."""
    lines, current = [], ""
    for raw in (K8S / "Dockerfile").read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    stages: list = [("(global)", [])]
    for line in lines:
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            parts = rest.split()
            stages.append((parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else "final", []))
        stages[-1][1].append((instruction, rest.strip()))
    return stages


def dockerfile_args() -> dict[str, str]:
    return dict(rest.split("=", 1) for instruction, rest in dockerfile_stages()[0][1] if instruction == "ARG" and "=" in rest)


def test_every_copy_source_of_the_dockerfile_is_in_the_repository():
    copies = 0
    for _, instructions in dockerfile_stages():
        for instruction, rest in instructions:
            if instruction not in ("COPY", "ADD"):
                continue
            words = rest.split()
            if any(w.startswith("--from=") for w in words):
                continue
            sources = [w for w in words if not w.startswith("--")][:-1]
            for source in sources:
                assert (PROJECT_ROOT / source).exists(), f"COPY {source}: not in the repository"
                copies += 1
    assert copies >= 8


def test_the_image_has_what_the_jobs_import_and_read():
    final = dict(dockerfile_stages())["final"]
    copied = {source for instruction, rest in final if instruction == "COPY" and "--from" not in rest
              for source in rest.split()[:-1] if not source.startswith("--")}
    workdir = [rest for instruction, rest in final if instruction == "WORKDIR"][0]
    assert workdir.rstrip("/") + "/" == IMAGE_ROOT
    # the packages setup.py installs, the SQL they render, the poms and Java sources vigil/jars.py
    # checks its cache against, and setup.py for the editable install
    setup = (PROJECT_ROOT / "setup.py").read_text()
    packages = set(re.findall(r'"(\w+)"', re.search(r"find_packages\(include=\[([^\]]*)\]", setup)[1]))
    assert packages == {"vigil", "jobs", "udfs"}
    assert packages | {"sql", "infra", "java", "setup.py", "requirements.lock"} <= copied
    text = (K8S / "Dockerfile").read_text()
    assert "-m venv /opt/venv" in text and VENV_PYTHON.startswith("/opt/venv/")
    assert "pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements.lock" in text


def test_the_image_is_flink_of_the_wheels_version_on_java_17_with_python_311_as_a_shared_library():
    import pyflink
    args = dockerfile_args()
    assert args["FLINK_IMAGE"] == f"flink:{pyflink.__version__}-scala_2.12-java17"
    version = tuple(int(p) for p in args["PYTHON_VERSION"].split("."))
    assert version[:2] == (3, 11)  # the Python the project's machines and tests run (3.11.7 here)
    low, high = re.search(r'python_requires=">=(\d+\.\d+),<(\d+\.\d+)"', (PROJECT_ROOT / "setup.py").read_text()).groups()
    assert tuple(map(int, low.split("."))) <= version[:2] < tuple(map(int, high.split(".")))
    text = (K8S / "Dockerfile").read_text()
    # thread mode embeds Python through pemja, which needs libpython (a static build has none)
    assert "--enable-shared" in text
    # the S3 file system as a plugin, flink-python and vigil-runtime in lib/
    assert "mkdir -p plugins/s3-fs-hadoop" in text and "cp opt/flink-s3-fs-hadoop-*.jar plugins/s3-fs-hadoop/" in text
    assert "cp opt/flink-python-*.jar lib/" in text
    assert "cp /opt/vigil-cache/jars/vigil-runtime/vigil-runtime-*.jar lib/" in text


def test_the_image_resolves_the_jars_the_jobs_use_with_the_projects_own_code():
    """The jar list is not written twice: the Dockerfile calls vigil/jars.py on the project's poms;
    here its calls are compared with what the jobs' code asks vigil.jars for."""
    jar_stage = dict(dockerfile_stages())["jars"]
    command = next(rest for instruction, rest in jar_stage if instruction == "RUN" and "from vigil import jars" in rest)
    ensured = set(re.findall(r"jars\.ensure\('([\w-]+)'\)", command))
    built = set(re.findall(r"jars\.vigil_jar\('([\w-]+)'\)", command))
    # what the jobs ask for: every job (flink_env -> flink_connector_jars), the analytics job
    # (jdbc_jars), the TaskManagers' warm-up (flink_cluster puts vigil-runtime in lib/)
    used = inspect.getsource(jars.flink_connector_jars) + inspect.getsource(jars.jdbc_jars)
    assert "jars.flink_connector_jars()" in (PROJECT_ROOT / "vigil" / "flink_env.py").read_text()
    assert "jars.jdbc_jars()" in (PROJECT_ROOT / "jobs" / "analytics.py").read_text()
    assert ensured == set(re.findall(r'ensure\("([\w-]+)"\)', used))
    assert built == set(re.findall(r'vigil_jar\("([\w-]+)"\)', used)) | {"vigil-runtime"}
    assert ensured <= set(jars.JAR_SETS)
    for module in built:
        assert (PROJECT_ROOT / "java" / module / "src" / "main").is_dir()
    # the final stage takes that cache and tells vigil/jars.py where it is
    final = dict(dockerfile_stages())["final"]
    assert ("COPY", "--from=jars --chown=flink:flink /opt/vigil-cache /opt/vigil-cache") in final
    assert any(instruction == "ENV" and "VIGIL_CACHE=/opt/vigil-cache" in rest for instruction, rest in final)


# ---- snapshots and restores -------------------------------------------------------------------------------------

def test_snapshot_examples_name_a_deployment_and_its_savepoint_folder(docs):
    prod = deployments(docs["prod"])
    for path in sorted(SNAPSHOTS.glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        if document.get("kind") == "FlinkStateSnapshot":
            target = prod[document["spec"]["jobReference"]["name"]]
            savepoint_dir = target["spec"]["flinkConfiguration"]["execution.checkpointing.savepoint-dir"]
            if "path" in document["spec"]["savepoint"]:
                assert document["spec"]["savepoint"]["path"].startswith(savepoint_dir + "/")
        else:  # the restore patch
            assert set(document["spec"]["job"]) == {"initialSavepointPath", "savepointRedeployNonce"}
            assert document["spec"]["job"]["initialSavepointPath"].startswith(
                prod["vigil-ingest"]["spec"]["flinkConfiguration"]["execution.checkpointing.savepoint-dir"] + "/")
