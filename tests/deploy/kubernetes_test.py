#!/usr/bin/python3
"""Renders every Kubernetes overlay offline and checks what it renders:
  * `kubectl kustomize` renders deploy/kubernetes/overlays/{cpu,gpu} and the Prometheus
    component (with sae.env made from its example, as docs/deploy.md says);
  * every object validates against the Kubernetes API schemas (npm kubernetes-models);
  * the service's pods run as non-root with a read-only root filesystem and no privilege
    escalation, have liveness and readiness probes that are not a bare TCP check, and CPU and
    memory requests and limits; the Secret carries SAE_AUTH_TOKEN and every workload reads it;
  * trainers get a grace period long enough for a checkpoint upload and a NetworkPolicy that
    admits only trainers (and Prometheus on the metrics port);
  * the gpu overlay requests nvidia.com/gpu for activation servers and trainers, the cpu one none.
The tools come from scripts/deploy-tools.sh (--tools DIR).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

WORKLOADS = ("Deployment", "StatefulSet")


def render(kubectl, folder, restrictor=False):
    cmd = [kubectl, "kustomize", folder]
    if restrictor:
        cmd += ["--load-restrictor", "LoadRestrictionsNone"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {folder}: {r.stderr}")
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def check_workloads(name, objects, failures, gpu):
    secrets = [o for o in objects if o["kind"] == "Secret"]
    secret_names = {o["metadata"]["name"] for o in secrets}
    if not any("SAE_AUTH_TOKEN" in (o.get("data") or {}) for o in secrets):
        failures.append(f"{name}: no Secret carries SAE_AUTH_TOKEN")
    workloads = [o for o in objects if o["kind"] in WORKLOADS]
    apps = {o["metadata"]["name"] for o in workloads}
    for want in ("sae-controller", "sae-activation-server", "sae-trainer"):
        if want not in apps:
            failures.append(f"{name}: no workload {want}")
    for w in workloads:
        where = f"{name} {w['kind']} {w['metadata']['name']}"
        pod = w["spec"]["template"]["spec"]
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            failures.append(f"{where}: pod does not set runAsNonRoot")
        for c in pod["containers"]:
            sc = c.get("securityContext", {})
            if not sc.get("readOnlyRootFilesystem") or sc.get("allowPrivilegeEscalation", True):
                failures.append(f"{where}: container {c['name']} lacks readOnlyRootFilesystem or "
                                "allowPrivilegeEscalation: false")
            for probe in ("livenessProbe", "readinessProbe"):
                p = c.get(probe)
                if not p or not ("httpGet" in p or "grpc" in p):
                    failures.append(f"{where}: {probe} missing or only a TCP check")
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(res.get(kind, {})):
                    failures.append(f"{where}: no cpu and memory {kind}")
            refs = {e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e}
            if not refs & secret_names:
                failures.append(f"{where}: does not read the token Secret ({sorted(secret_names)})")
            has_gpu = any("nvidia.com/gpu" in res.get(k, {}) for k in ("requests", "limits"))
            wants_gpu = gpu and w["metadata"]["name"] in ("sae-activation-server", "sae-trainer")
            if has_gpu != wants_gpu:
                failures.append(f"{where}: nvidia.com/gpu {'missing' if wants_gpu else 'requested'}")
            if gpu and w["metadata"]["name"] == "sae-trainer" and "nccl" not in c.get("args", []):
                failures.append(f"{where}: trainers on GPUs should use --backend nccl")
        if w["metadata"]["name"] == "sae-trainer" and pod.get("terminationGracePeriodSeconds", 30) < 120:
            failures.append(f"{where}: terminationGracePeriodSeconds below 120 s cannot upload a checkpoint")
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"
                and o["spec"]["podSelector"].get("matchLabels", {}).get("app") == "sae-trainer"]
    if not policies:
        failures.append(f"{name}: no NetworkPolicy for the trainers' c10d ports")
    for p in policies:
        for rule in p["spec"].get("ingress", []):
            sources = [s.get("podSelector", {}).get("matchLabels", {}).get("app") for s in rule.get("from", [])]
            if not sources or any(s not in ("sae-trainer", "sae-prometheus") for s in sources):
                failures.append(f"{name}: trainer NetworkPolicy admits {sources}")
            if "sae-prometheus" in sources and not rule.get("ports"):
                failures.append(f"{name}: Prometheus may reach every trainer port")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--source", required=True)
    p.add_argument("--tools", required=True)
    a = p.parse_args()
    kubectl = os.path.join(a.tools, "venv", "bin", "kubectl")
    models = os.path.join(a.tools, "npm", "node_modules")
    for path in (kubectl, os.path.join(models, "kubernetes-models")):
        if not os.path.exists(path):
            print(f"FAIL {path} is missing: run bash scripts/deploy-tools.sh")
            return 1

    failures, rendered = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        deploy = os.path.join(tmp, "deploy")
        shutil.copytree(os.path.join(a.source, "deploy"), deploy)
        base = os.path.join(deploy, "kubernetes", "base")
        shutil.copy(os.path.join(base, "sae.env.example"), os.path.join(base, "sae.env"))
        for overlay in ("cpu", "gpu"):
            rendered[overlay] = render(kubectl, os.path.join(deploy, "kubernetes", "overlays", overlay))
        rendered["prometheus"] = render(kubectl, os.path.join(deploy, "kubernetes", "prometheus"), True)

    for name, objects in rendered.items():
        r = subprocess.run(["node", os.path.join(os.path.dirname(__file__), "validate_k8s.js"), models],
                           input=json.dumps(objects), capture_output=True, text=True)
        print(f"--- {name}\n{r.stdout}{r.stderr}", end="")
        if r.returncode != 0:
            failures.append(f"{name}: objects fail the Kubernetes schemas")
    for overlay in ("cpu", "gpu"):
        check_workloads(overlay, rendered[overlay], failures, gpu=(overlay == "gpu"))
    prom = rendered["prometheus"]
    rules = [o for o in prom if o["kind"] == "ConfigMap" and "sae-service.rules.yml" in o.get("data", {})]
    if not rules:
        failures.append("prometheus: the alerting rules are not in a ConfigMap")
    if not any(o["kind"] in ("Role", "ClusterRole") for o in prom):
        failures.append("prometheus: no RBAC for pod discovery")

    for f in failures:
        print("FAIL", f)
    print(f"kubernetes: {sum(len(v) for v in rendered.values())} objects, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
