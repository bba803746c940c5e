#!/usr/bin/python3
"""The checks scripts/compose-test.sh runs against the compose stack's Prometheus after a run:
  * every scrape target (controller, both activation servers, both trainers) is up;
  * Prometheus holds the run's series (training, stream, controller);
  * every query of every Grafana panel (with $run_id set to the run, $sae to All) returns data
    over the last 15 minutes; a panel without data fails;
  * no container log contains the bearer token.
"""
import argparse
import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def api(base, path, **params):
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params, doseq=True)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{params}: HTTP {e.code}: {e.read().decode(errors='replace')}") from e
    if body.get("status") != "success":
        raise RuntimeError(f"{url}: {body}")
    return body["data"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--prometheus", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--dashboard", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--logs-of", required=True, help="compose project whose container logs to grep")
    a = p.parse_args()
    failures = []

    # Wait (60 s at most) for a scrape that saw the run succeed.
    deadline = time.time() + 60
    while not api(a.prometheus, "query", query='sae_controller_runs{state="succeeded"} >= 1')["result"]:
        if time.time() > deadline:
            failures.append("Prometheus never saw the run succeed (sae_controller_runs)")
            break
        time.sleep(1)
    up = api(a.prometheus, "query", query="up")["result"]
    jobs = {}
    for r in up:
        jobs.setdefault(r["metric"].get("job"), []).append(float(r["value"][1]))
    want = {"sae-controller": 1, "sae-activation-server": 2, "sae-trainer": 2}
    for job, count in want.items():
        values = jobs.get(job, [])
        if len(values) != count or any(v != 1 for v in values):
            failures.append(f"job {job}: want {count} targets up, got {values}")

    now = time.time()
    start = now - 15 * 60
    names = {s["__name__"] for s in api(a.prometheus, "series", **{"match[]": f'{{run_id="{a.run}"}}'},
                                        start=start, end=now)}
    print(f"Prometheus holds {len(names)} series names for run {a.run}")
    for name in ("sae_train_mse_loss", "sae_train_tokens_total", "sae_stream_served_activations_total",
                 "sae_controller_run_step", "sae_controller_checkpoints_total"):
        if name not in names:
            failures.append(f"no series {name} for run {a.run}")

    dash = json.load(open(a.dashboard))
    all_sae = next(v["allValue"] for v in dash["templating"]["list"] if v["name"] == "sae")
    panels = 0
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            # Run ids are [a-z0-9-]: nothing to escape for the regex matcher. $sae as Grafana's
            # All (the variable's allValue), which also matches the one-SAE run's series.
            expr = t["expr"].replace("$run_id", a.run).replace("$sae", all_sae)
            result = api(a.prometheus, "query_range", query=expr, start=start, end=now, step=2)["result"]
            samples = sum(len(r["values"]) for r in result)
            panels += 1
            status = "ok  " if samples else "FAIL"
            print(f"{status} {panel['title']} [{t['refId']}]: {len(result)} series, {samples} samples")
            if not samples:
                failures.append(f"panel '{panel['title']}' query {t['refId']} returns no data: {expr}")
    if panels < 30:
        failures.append(f"only {panels} panel queries found")

    containers = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}",
                                 "--filter", f"name={a.logs_of}"],
                                capture_output=True, text=True).stdout.split()
    for c in containers:
        logs = subprocess.run(["podman", "logs", c], capture_output=True, text=True)
        if a.token in logs.stdout + logs.stderr:
            failures.append(f"container {c}'s log contains the bearer token")
    print(f"grepped the logs of {len(containers)} containers for the token")

    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
