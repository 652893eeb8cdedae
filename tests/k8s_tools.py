"""What tests/unit/test_k8s_manifests.py needs to check k8s/ offline: a kustomize renderer, a
validator and the schemas it validates against, each installed on first use into the project's
tool cache (vigil.paths.cache_dir() / "tools": ~/.cache/vigil/tools, or $VIGIL_CACHE/tools).

- Rendering: `kubectl kustomize` where kubectl is installed (it embeds kustomize); otherwise
  kustomize itself, built once from the Go module proxy (`go install`).
- Validation: kubeconform, built once from the Go module proxy (`go install`), run with -strict.
- The Flink Kubernetes Operator's CRDs (../shared/k8s-crds/*.yml) turned into the JSON schemas
  kubeconform reads (openapi2jsonschema's approach): `openAPIV3Schema` with every object that
  lists its properties closed to others (a CRD's structural schema drops or, with strict field
  validation, rejects unknown fields), `nullable` and `x-kubernetes-int-or-string` spelled in
  JSON Schema.
- Kubernetes' own kinds (Namespace, ServiceAccount, RBAC, ConfigMap, PersistentVolumeClaim) from
  the strict JSON schemas shipped in the `kubernetes-validate` package on PyPI: its wheel is
  fetched once with pip (not installed) and the schemas of one Kubernetes version unpacked, their
  references made local (they name kubernetes.io URLs, which are not reachable from here).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import yaml

from vigil.paths import PROJECT_ROOT, cache_dir

KUBECONFORM = ("github.com/yannh/kubeconform/cmd/kubeconform", "v0.7.0")
# the kustomize that kubectl 1.32 embeds (kubectl version --client), used only without kubectl
KUSTOMIZE = ("sigs.k8s.io/kustomize/kustomize/v5", "v5.5.0")
# Kubernetes' schemas: the kubectl here is 1.32; the operator supports the versions around it
K8S_SCHEMAS = ("kubernetes-validate", "1.37.0", "1.32.0")


def _crd_dir() -> Path:
    """The operator's CRDs (Maven Central serves no operator artifact here): VIGIL_K8S_CRDS, else
    `shared/k8s-crds` beside the checkout, else beside the repository this one was cloned from (a
    fresh clone in a temporary folder)."""
    if os.environ.get("VIGIL_K8S_CRDS"):
        return Path(os.environ["VIGIL_K8S_CRDS"])
    candidates = [PROJECT_ROOT.parent / "shared" / "k8s-crds"]
    origin = subprocess.run(["git", "-C", str(PROJECT_ROOT), "config", "--get", "remote.origin.url"],
                            capture_output=True, text=True).stdout.strip()
    if origin and "://" not in origin and Path(origin).is_dir():
        candidates.append(Path(origin).resolve().parent / "shared" / "k8s-crds")
    return next((c for c in candidates if c.is_dir()), candidates[0])


CRD_DIR = _crd_dir()

# kubeconform's file-name templates: built-in kinds as kubernetes-validate names them
# (serviceaccount-v1.json, rolebinding-rbac-v1.json), CRDs by full group
BUILTIN_TEMPLATE = "{{ .ResourceKind }}{{ .KindSuffix }}.json"
CRD_TEMPLATE = "{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"


def tools_dir() -> Path:
    path = cache_dir() / "tools"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _go_install(module: str, version: str, binary: str) -> Path:
    """`go install module@version` into tools/<binary>-<version>/ (once; atomic rename)."""
    target = tools_dir() / f"{binary}-{version}"
    exe = target / binary
    if exe.exists():
        return exe
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise RuntimeError(f"{binary} is not installed and there is no Go toolchain to build it "
                           f"(go install {module}@{version})")
    staging = Path(tempfile.mkdtemp(prefix=f"{binary}-", dir=tools_dir()))
    staging.chmod(0o755)
    env = {**os.environ, "GOBIN": str(staging), "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    result = subprocess.run([go, "install", f"{module}@{version}"], env=env, capture_output=True,
                            text=True, timeout=1200)
    if result.returncode != 0 or not (staging / binary).exists():
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError(f"go install {module}@{version} failed:\n{result.stderr[-3000:]}")
    try:
        staging.rename(target)
    except OSError:  # another process installed it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    return exe


def kubeconform() -> Path:
    return _go_install(*KUBECONFORM, "kubeconform")


def render(overlay: Path) -> str:
    """The overlay's manifests as `kubectl apply -k` would send them."""
    kubectl = shutil.which("kubectl")
    if kubectl:
        cmd = [kubectl, "kustomize", str(overlay)]
    else:
        cmd = [str(_go_install(*KUSTOMIZE, "kustomize")), "build", str(overlay)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{result.stderr}")
    return result.stdout


# ---- the operator's CRDs as JSON schemas ---------------------------------------------------

def openapi_to_json_schema(node):
    """One CRD schema node in JSON Schema (draft 4, kubeconform's default), strict.

    >>> openapi_to_json_schema({"type": "object", "properties": {"a": {"type": "string", "nullable": True}}})
    {'type': 'object', 'properties': {'a': {'type': ['string', 'null']}}, 'additionalProperties': False}
    >>> openapi_to_json_schema({"x-kubernetes-int-or-string": True})
    {'anyOf': [{'type': 'integer'}, {'type': 'string'}]}
    >>> openapi_to_json_schema({"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    {'type': 'object'}
    """
    if isinstance(node, list):
        return [openapi_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: openapi_to_json_schema(value) for key, value in node.items() if not key.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    open_object = node.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in node
    if "properties" in node and not open_object:
        out["additionalProperties"] = False
    return out


def crd_schemas(out: Path, object_meta: dict, crd_dir: Path = CRD_DIR) -> list[str]:
    """Write <group>/<kind>_<version>.json for every CRD in crd_dir; return the kinds.
    `object_meta`: the schema of `metadata`, which a CRD leaves to the API server (ObjectMeta)."""
    if not crd_dir.is_dir():
        raise RuntimeError(f"{crd_dir} is missing: the operator's CRDs are expected beside the checkout "
                           "(../shared/k8s-crds)")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    kinds = []
    for path in sorted(crd_dir.glob("*.y*ml")):
        for crd in yaml.load_all(path.read_text(), Loader=loader):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = openapi_to_json_schema(version["schema"]["openAPIV3Schema"])
                # kubeconform selects the schema by kind and apiVersion; say them in it too
                schema.setdefault("properties", {})["apiVersion"] = {"enum": [f"{group}/{version['name']}"]}
                schema["properties"]["kind"] = {"enum": [kind]}
                schema["properties"]["metadata"] = object_meta
                target = out / group / f"{kind.lower()}_{version['name']}.json"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(schema))
            kinds.append(kind)
    return kinds


# ---- Kubernetes' own schemas ----------------------------------------------------------------

def builtin_schemas() -> Path:
    """The strict schemas of K8S_SCHEMAS' Kubernetes version, unpacked once from the package's wheel."""
    package, version, k8s = K8S_SCHEMAS
    target = tools_dir() / f"kubernetes-json-schema-v{k8s}-strict-{package}-{version}"
    marker = target / ".complete"
    if marker.exists():
        return target
    wheels = tools_dir() / "wheels"
    wheel = next(iter(wheels.glob(f"{package.replace('-', '_')}-{version}-*.whl")), None)
    if wheel is None:
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                                 "-q", "-d", str(wheels), f"{package}=={version}"],
                                capture_output=True, text=True, timeout=600)
        wheel = next(iter(wheels.glob(f"{package.replace('-', '_')}-{version}-*.whl")), None)
        if result.returncode != 0 or wheel is None:
            raise RuntimeError(f"pip download {package}=={version} failed:\n{result.stderr[-3000:]}")
    prefix = f"kubernetes_validate/kubernetes-json-schema/v{k8s}-local-strict/"
    staging = Path(tempfile.mkdtemp(prefix="k8s-schemas-", dir=tools_dir()))
    staging.chmod(0o755)
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if n.startswith(prefix) and n.endswith(".json")]
        if not names:
            raise RuntimeError(f"{wheel.name} has no schemas for Kubernetes {k8s}")
        for name in names:
            schema = json.loads(archive.read(name))
            # "$id": "https://kubernetes.io/api/..." and "$ref": "/api/_definitions.json#..." would send
            # the validator to kubernetes.io: resolve them against the unpacked folder instead
            schema.pop("$id", None)
            text = json.dumps(schema).replace('"/api/_definitions.json#', '"_definitions.json#')
            (staging / name[len(prefix):]).write_text(text)
    (staging / ".complete").write_text(f"{package}=={version} {hashlib.sha256(wheel.read_bytes()).hexdigest()}\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def object_meta_schema() -> dict:
    """A reference to Kubernetes' ObjectMeta schema in the unpacked built-in schemas."""
    definitions = builtin_schemas() / "_definitions.json"
    return {"$ref": definitions.as_uri() + "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}


# ---- validation ----------------------------------------------------------------------------------

def validate(files: list[Path], crd_schema_dir: Path) -> list[dict]:
    """kubeconform -strict over `files`: one result per resource (status statusValid, statusInvalid,
    statusError...), every kind matched against Kubernetes' schemas, then the CRDs'."""
    cmd = [str(kubeconform()), "-strict", "-verbose", "-output", "json", "-n", "2",
           "-schema-location", str(builtin_schemas() / BUILTIN_TEMPLATE),
           "-schema-location", str(crd_schema_dir / CRD_TEMPLATE), *map(str, files)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    try:
        return json.loads(result.stdout)["resources"]
    except (ValueError, KeyError):
        raise AssertionError(f"kubeconform said (exit {result.returncode}):\n{result.stdout}\n{result.stderr}") from None
