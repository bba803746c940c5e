#!/usr/bin/python3
"""Checks deploy/ against the code it deploys:
  * every YAML file parses; the docker-compose Prometheus configuration passes promtool;
  * every flag the compose file and the Kubernetes manifests pass to a binary is one that
    binary's --help lists;
  * every series the Grafana dashboards query is named by the code (a string literal in
    core/ or services/, outside tests; histograms with their _bucket/_sum/_count suffixes).
"""
import argparse
import json
import os
import re
import subprocess
import sys

import yaml

BINARIES = ["sae-controller", "sae-activation-server", "sae-trainer", "saectl"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--source", required=True)
    p.add_argument("--bin-dir", required=True)
    a = p.parse_args()
    deploy = os.path.join(a.source, "deploy")
    failures = []

    docs = {}
    for root, _, files in os.walk(deploy):
        for f in files:
            if f.endswith((".yml", ".yaml")):
                path = os.path.join(root, f)
                try:
                    docs[path] = [d for d in yaml.safe_load_all(open(path)) if d is not None]
                except yaml.YAMLError as e:
                    failures.append(f"{path}: {e}")

    r = subprocess.run(["promtool", "check", "config", os.path.join(deploy, "prometheus", "prometheus.yml")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        failures.append("promtool check config: " + r.stdout + r.stderr)

    helps = {}
    for b in BINARIES:
        out = subprocess.run([os.path.join(a.bin_dir, b), "--help"], capture_output=True, text=True)
        helps[b] = out.stdout + out.stderr

    def check_command(where, words):
        words = [w for part in words for w in str(part).split()]
        if not words or words[0] not in helps:
            return
        binary = words[0]
        for w in words[1:]:
            if w.startswith("--"):
                flag = w.split("=")[0]
                if not re.search(r"(^|[\s,])" + re.escape(flag) + r"\b", helps[binary]):
                    failures.append(f"{where}: {binary} has no flag {flag}")

    compose = docs[os.path.join(deploy, "docker-compose.yml")][0]
    checked = 0
    for name, svc in compose["services"].items():
        cmd = svc.get("command")
        if isinstance(cmd, list):
            cmd = " ".join(cmd)
        if cmd:
            cmd = cmd.replace("exec ", "").replace("$$(hostname)", "host")
            check_command(f"docker-compose service {name}", [cmd])
            checked += 1
    for path, ds in docs.items():
        if "kubernetes" not in path:
            continue
        for d in ds:
            spec = d.get("spec", {}).get("template", {}).get("spec", {})
            for c in spec.get("containers", []):
                if c.get("args"):
                    check_command(f"{path} {d['metadata']['name']}", c["args"])
                    checked += 1
    if checked < 6:
        failures.append(f"only {checked} commands found to check")

    registered = set()
    for top in ("core", "services"):
        for root, _, files in os.walk(os.path.join(a.source, top)):
            for f in files:
                if f.endswith(".cc") and not f.endswith("_test.cc"):
                    text = open(os.path.join(root, f)).read()
                    names = re.findall(r'"(sae_[a-z0-9_]+)"', text)
                    registered.update(names)
                    # A prefix such as "sae_controller_run_" joined to a table of suffixes
                    # ({"step", "help", ...} entries in the same file).
                    for prefix in (n for n in names if n.endswith("_")):
                        registered.update(prefix + m for m in re.findall(r'\{"([a-z0-9_]+)",', text))
    dashboards = os.path.join(deploy, "grafana", "dashboards")
    queried = 0
    for f in os.listdir(dashboards):
        dash = json.load(open(os.path.join(dashboards, f)))
        queries = [(f"panel '{p['title']}'", t["expr"]) for p in dash["panels"]
                   for t in p.get("targets", [])]
        queries += [(f"annotation '{a['name']}'", a["expr"])
                    for a in dash.get("annotations", {}).get("list", [])]
        for where, expr in queries:
            for name in re.findall(r"\b(sae_[a-z0-9_]+)", expr):
                queried += 1
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                if name not in registered and not (base != name and base.endswith("_seconds") and base in registered):
                    failures.append(f"dashboard {f} {where} queries {name}, which no code exports")
    if queried < 20:
        failures.append(f"only {queried} series found in dashboards")

    for f in failures:
        print("FAIL", f)
    print(f"deploy: {len(docs)} YAML files, {checked} commands, {queried} dashboard series, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
