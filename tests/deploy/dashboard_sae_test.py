#!/usr/bin/python3
"""The Grafana dashboard's `sae` variable, checked with `promtool test rules` (ctest
deploy.grafana_sae_variable_selects_the_chosen_saes).

The test file is generated here from the committed dashboard JSON, so that a new panel is covered
without editing this script. Its input is what Prometheus would hold after scraping two runs:
  * r-sweep, a run of two SAEs on two trainer ranks: every sae_train_* series once per rank and
    SAE (label sae), plus the run-level set a cluster trainer also registers (no sae label, left
    at zero in a run of many SAEs); the controller's sae_controller_run_* and sae_controller_sae_*;
  * r-one, a run of one SAE on two ranks: sae_train_* without the sae label;
  * for both, the trainers' stream series, two activation servers, the controller's other series.
The families and their labels are read from the code that registers them (core/training,
services/trainer, services/activation_server, services/controller), so the input has the
exposition's shape.

Every query of every panel (and annotation) is one of:
  * per SAE: it has sae=~"$sae" on every selector (all of per-SAE series). With $sae set to one SAE
    (escaped as Grafana escapes a multi-value variable), `group by (run_id, sae)` of the query
    must be that SAE of r-sweep only; with two SAEs, those two; with All (`.*`), every (run, sae)
    the input holds, r-one's series (no sae label) among them; the SAE's values must be the same
    chosen alone as under All; a plain `max by (run_id, sae)` of a gauge must give the SAE's value;
  * per run: no $sae; it must not query a per-SAE series unless listed in RUN_LEVEL (with why),
    and `group by (run_id, sae)` of it must be one group per run with no sae label.
A query that fits neither (a per-SAE series without the sae filter, a series the model does not
know, a matcher other than run_id=~"$run_id" and sae=~"$sae") fails with a message.

  python3 tests/deploy/dashboard_sae_test.py --source .   [--keep FILE]  (writes the test file)
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

SWEEP, ONE = "r-sweep", "r-one"
SAES = ["blocks.2.hook_resid_pre/l1=8e-05", "blocks.2.hook_resid_pre/l1=0.0004"]
RANKS, SERVERS = 2, 2
BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]
INTERVAL_S, POINTS, EVAL = 15, 40, "10m"  # samples every 15 s for 10 min, evaluated at the end
# Per-run queries that read per-SAE series on purpose, and why.
RUN_LEVEL = {
    ("Share of step time waiting for data", "A"):
        "a rank waits once per batch and records it alike in every SAE's series; the share is "
        "the run's (max over a rank's SAEs, steps summed over them)",
    ("Step, data wait and all-reduce (p95)", "B"):
        "the data wait is recorded alike in every SAE's series: its p95 is the run's",
}
# Values of labels other than run_id, rank, server and sae.
OTHER_LABELS = {"state": ["running", "succeeded"], "role": ["trainer", "activation_server"]}


def grafana_regex_escape(value):
    """prometheusSpecialRegexEscape of Grafana's Prometheus data source (a multi-value variable's
    values): a backslash and $^*{}[]'+?.()| escaped for the regex inside a PromQL string."""
    value = value.replace("\\", "\\\\\\\\")
    return re.sub(r"([$^*{}\[\]'+?.()|])", r"\\\\\1", value)


ALL_SAE = ".*"  # the variable's allValue, read from the dashboard


def substitute(expr, sae, run=".*"):
    """The query as Grafana sends it: run All (.*), sae a list of names (None: All, the
    variable's allValue as it is, unescaped)."""
    if sae is None:
        value = ALL_SAE
    elif len(sae) == 1:
        value = grafana_regex_escape(sae[0])
    else:
        value = "(" + "|".join(grafana_regex_escape(s) for s in sae) + ")"
    return expr.replace("$run_id", run).replace("$sae", value)


# --- The families, read from the code -----------------------------------------------------------

def strip_strings(text):
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)


def call_text(text, start):
    """The text of the call whose '(' is at `start`, up to its ')' (string literals skipped)."""
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        if c == '"':
            i += 1
            while text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return text[start:i + 1]
        i += 1
    raise ValueError("unbalanced call")


def label_list(text):
    return re.findall(r'"([a-z_]+)"', text)


def families_of(path, failures):
    """{name: (kind, labels)} of every Add{Gauge,Counter,Histogram}("sae_...") in a file: labels
    from the call's {"a", "b"} list, else the file's `labels = {...}` (LabelledSeries and calls
    that pass `labels`)."""
    text = open(path).read()
    m = re.search(r"std::vector<std::string> labels = \{([^}]*)\}", text)
    file_labels = label_list(m.group(1)) if m else None
    out = {}
    for m in re.finditer(r'Add(Gauge|Counter|Histogram)\(\s*"(sae_[a-z0-9_]+)"', text):
        raw = call_text(text, m.start() + len("Add" + m.group(1)))
        # A {"a", "b"} (or {}) list in the call (outside its strings) names the labels.
        if re.search(r'\{\s*(""\s*,?\s*)*\}', strip_strings(raw)):
            labels = label_list(re.findall(r'\{((?:\s*"[a-z_]+"\s*,?)*\s*)\}', raw)[-1])
        else:
            labels = file_labels
        if labels is None:
            failures.append(f"{path}: cannot tell the labels of {m.group(2)}")
            continue
        out[m.group(2)] = (m.group(1).lower(), tuple(labels))
    return out


def table_names(text, function):
    """The {"name", ...} entries of a function's static table (controller_metrics.cc)."""
    start = text.index(f"& {function}() {{")
    end = text.index("return *series;", start)
    return re.findall(r'\{"([a-z0-9_]+)",', text[start:end])


def read_families(source, failures):
    """{name: (kind, labels, who)}; who is the job scraping it (trainer's training series:
    "training")."""
    fams = {}

    def add(path, who, want_labels=None):
        for name, (kind, labels) in families_of(os.path.join(source, path), failures).items():
            if want_labels is not None and name.startswith("sae_train_") and labels != want_labels:
                failures.append(f"{path}: {name} has labels {labels}, the test's model "
                                f"{want_labels}: update dashboard_sae_test.py")
            fams[name] = (kind, labels, who)

    add("core/training/training_metrics.cc", "training", ("run_id", "rank", "sae"))
    add("services/trainer/stream_metrics.cc", "trainer")
    add("services/activation_server/server_metrics.cc", "activation")
    controller = "services/controller/controller_metrics.cc"
    add(controller, "controller")
    text = open(os.path.join(source, controller)).read()
    made = re.findall(r'StrCat\("(sae_controller_[a-z]+_)", series\.name\),\s*series\.help, '
                      r'(\{[^}]*\})', text)
    if made != [("sae_controller_run_", '{"run_id"}'),
                ("sae_controller_sae_", '{"run_id", "sae"}')]:
        failures.append(f"{controller}: the run and per-SAE families are not made as the test "
                        "expects (StrCat(\"sae_controller_run_\"/\"sae_controller_sae_\", name)): "
                        "update dashboard_sae_test.py")
    for n in table_names(text, "Series"):
        fams["sae_controller_run_" + n] = ("gauge", ("run_id",), "controller")
    for n in table_names(text, "PerSaeSeries"):
        fams["sae_controller_sae_" + n] = ("gauge", ("run_id", "sae"), "controller")
    if len([n for n, f in fams.items() if "sae" in f[1]]) < 20:
        failures.append(f"only {len(fams)} families read from the code, "
                        f"{sorted(fams)[:10]}...: the parser is out of date")
    return fams


# --- The input series --------------------------------------------------------------------------

def label_sets(labels, who, run):
    """Every label set the family has for `run`, as a list of (dict, sae or None, zero)."""
    if "run_id" not in labels and run is not None:
        return []
    sets = [({}, None, False)]
    for label in labels:
        grown = []
        for d, sae, zero in sets:
            if label == "run_id":
                values = [run]
            elif label == "rank":
                values = [str(r) for r in range(RANKS)]
            elif label == "server":
                values = [str(s) for s in range(SERVERS)]
            elif label == "sae":
                # A run of many SAEs: each SAE's series (the trainer registers no run-level set
                # for it: services/trainer/distributed_training.cc); a run of one: no label.
                # The controller's per-SAE series exist for a run of many SAEs only.
                if run == SWEEP:
                    values = list(SAES)
                else:
                    values = [""] if who == "training" else []
            else:
                values = OTHER_LABELS.get(label, ["x"])
            for v in values:
                e = dict(d)
                if v != "":
                    e[label] = v
                grown.append((e, v if label == "sae" else sae,
                              zero or (label == "sae" and run == SWEEP and v == "")))
        sets = grown
    return sets


def job_labels(who, d):
    if who in ("training", "trainer"):
        return {"job": "sae-trainer", "instance": f"{d['run_id']}-trainer-{d['rank']}:9100"}
    if who == "activation":
        return {"job": "sae-activation-server",
                "instance": f"{d['run_id']}-activation-{d['server']}:9100"}
    return {"job": "sae-controller", "instance": "sae-controller:9090"}


def fmt(name, d):
    inner = ",".join(f'{k}="{v}"' for k, v in d.items())
    return f"{name}{{{inner}}}"


def gauge_base(name, run, sae):
    """A distinct integer per series of a family (ranks alike: the all-reduced values)."""
    return 10 + 100 * (SAES.index(sae) + 1 if sae else 0) + (7 if run == ONE else 0) + \
        sum(map(ord, name)) % 50


def build_input(fams):
    series, values = [], {}
    for name, (kind, labels, who) in sorted(fams.items()):
        for run in ([SWEEP, ONE] if "run_id" in labels else [None]):
            for d, sae, zero in label_sets(labels, who, run):
                full = dict(d, **job_labels(who, d)) if "run_id" in d else \
                    dict(d, job="sae-controller", instance="sae-controller:9090")
                if kind == "gauge":
                    base = gauge_base(name, run, sae)
                    if zero:
                        # NaN until the first sparsity window (training_metrics.cc), else 0.
                        v = "NaN+0x40" if "log10" in name else "0+0x40"
                    else:
                        v = f"{base}+1x{POINTS}"
                        values[(name, run, sae)] = base + POINTS
                    series.append({"series": fmt(name, full), "values": v})
                elif kind == "counter":
                    step = 0 if zero else 3 + (SAES.index(sae) if sae else 0)
                    series.append({"series": fmt(name, full), "values": f"0+{step}x{POINTS}"})
                else:
                    # One observation per 15 s: the wait for data alike in every SAE's series,
                    # steps and all-reduces of each SAE its own.
                    if zero:
                        obs = None
                    elif "wait_for_data" in name:
                        obs = 0.25
                    else:
                        obs = 0.05 if sae == SAES[0] else 0.5
                    for le in BUCKETS:
                        hit = obs is not None and (le == "+Inf" or obs <= float(le))
                        series.append({"series": fmt(name + "_bucket", dict(full, le=le)),
                                       "values": f"0+{1 if hit else 0}x{POINTS}"})
                    series.append({"series": fmt(name + "_sum", full),
                                   "values": f"0+{obs or 0}x{POINTS}"})
                    series.append({"series": fmt(name + "_count", full),
                                   "values": f"0+{0 if obs is None else 1}x{POINTS}"})
    return series, values


def pairs_of(fams, name, sae_filter):
    """The (run_id, sae) pairs the input holds for a family, its SAEs limited to sae_filter."""
    kind, labels, who = fams[name]
    out = set()
    for run in ([SWEEP, ONE] if "run_id" in labels else [None]):
        for d, sae, _ in label_sets(labels, who, run):
            s = d.get("sae", "")
            if sae_filter is None or s in sae_filter:
                out.add((d.get("run_id", ""), s))
    return out


# --- The queries -------------------------------------------------------------------------------

SELECTOR = re.compile(r"\b((?:sae|process)_[a-z0-9_]+|up)\b(\{[^}]*\})?(?!\s*\()")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def family(fams, name):
    if name in fams:
        return name
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    return base if base != name and fams.get(base, ("",))[0] == "histogram" else None


def group_test(expr, pairs):
    return {"expr": f"group by (run_id, sae) ({expr})", "eval_time": EVAL,
            "exp_samples": [{"labels": "{" + ",".join(
                [f'run_id="{r}"'] * bool(r) + [f'sae="{s}"'] * bool(s)) + "}", "value": 1}
                for r, s in sorted(pairs)]}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--source", required=True)
    p.add_argument("--keep", help="also write the generated test file here")
    a = p.parse_args()
    failures = []
    fams = read_families(a.source, failures)
    per_sae = {n for n, f in fams.items() if "sae" in f[1]}
    input_series, build_values = build_input(fams)
    dash = json.load(open(os.path.join(a.source, "deploy", "grafana", "dashboards",
                                       "sae-training.json")))

    # The variable: multi-value, All as .*, its values the sae label of a per-SAE trainer series
    # of the chosen runs.
    var = [v for v in dash.get("templating", {}).get("list", []) if v.get("name") == "sae"]
    if not var:
        failures.append("the dashboard has no template variable `sae`")
    else:
        v = var[0]
        global ALL_SAE
        ALL_SAE = v.get("allValue")
        q = v.get("query", {}).get("query", "")
        m = re.fullmatch(r'label_values\((sae_train_[a-z0-9_]+)\{run_id=~"\$run_id"\}, sae\)', q)
        if not (v.get("multi") and v.get("includeAll") and v.get("allValue") == ".*"):
            failures.append(f"variable sae: want multi, includeAll and allValue .*, got {v}")
        if m is None or m.group(1) not in per_sae or v.get("definition") != q:
            failures.append(f"variable sae: want label_values(<a per-SAE sae_train_ series>"
                            f'{{run_id=~"$run_id"}}, sae) as query and definition, got {q!r}')

    queries = [(p["title"], t["refId"], t["expr"]) for p in dash["panels"]
               for t in p.get("targets", [])]
    queries += [(f"annotation {x['name']}", "", x["expr"])
                for x in dash.get("annotations", {}).get("list", [])]
    tests = []
    checked = {"per SAE": 0, "per run": 0}
    for title, ref, expr in queries:
        where = f"panel '{title}' [{ref}]"
        selectors = []
        for m in SELECTOR.finditer(expr):
            name = family(fams, m.group(1))
            if name is None:
                failures.append(f"{where}: the test has no model of series {m.group(1)} (add its "
                                f"family to dashboard_sae_test.py, with the labels the code "
                                f"exports): {expr}")
                continue
            matchers = MATCHER.findall(m.group(2) or "")
            for label, op, value in matchers:
                if (label, op, value) not in (("run_id", "=~", "$run_id"), ("sae", "=~", "$sae")):
                    failures.append(f"{where}: the test does not know how to check the matcher "
                                    f'{label}{op}"{value}" of {m.group(1)}: {expr}')
            selectors.append((name, ("sae", "=~", "$sae") in matchers))
        if not selectors:
            failures.append(f"{where}: no series found in the query: {expr}")
            continue
        filtered = [s for s in selectors if s[1]]
        if "$sae" in expr and (len(filtered) != len(selectors) or
                               expr.count("$sae") != len(filtered)):
            failures.append(f"{where}: the test does not know how to check a query with "
                            f"sae=~\"$sae\" on some selectors only (each selector of a per-SAE "
                            f"query filters by it): {expr}")
            continue
        if filtered:
            checked["per SAE"] += 1
            alone = [s[0] for s in selectors if s[0] not in per_sae]
            if alone:
                failures.append(f"{where}: sae=~\"$sae\" on {alone}, which have no sae label")
                continue
            for choice in ([SAES[0]], SAES, None):
                pairs = set.intersection(*(pairs_of(fams, n, choice) for n, _ in selectors))
                tests.append(group_test(substitute(expr, choice), pairs))
            # Chosen alone, an SAE's line is the one All draws for it.
            tests.append({"expr": f"({substitute(expr, [SAES[1]])}) != ({substitute(expr, None)})",
                          "eval_time": EVAL, "exp_samples": []})
            m = re.fullmatch(r'max by \(run_id, sae\) \((sae_[a-z0-9_]+)\{run_id=~"\$run_id", '
                             r'sae=~"\$sae"\}\)', expr)
            if m and fams[m.group(1)][0] == "gauge":
                tests.append({"expr": substitute(expr, [SAES[1]]), "eval_time": EVAL,
                              "exp_samples": [{"labels": f'{{run_id="{SWEEP}",sae="{SAES[1]}"}}',
                                               "value": build_values[(m.group(1), SWEEP,
                                                                      SAES[1])]}]})
        else:
            checked["per run"] += 1
            reading = sorted({n for n, _ in selectors if n in per_sae})
            if reading and (title, ref) not in RUN_LEVEL:
                failures.append(f"{where} queries {reading}, which carry an sae label, without "
                                f"sae=~\"$sae\": a run of many SAEs mixes its SAEs there (filter "
                                f"it and keep sae in by (...), or list it in RUN_LEVEL with why): "
                                f"{expr}")
                continue
            runs = set.intersection(*({r for r, _ in pairs_of(fams, n, None)}
                                      for n, _ in selectors))
            tests.append(group_test(substitute(expr, [SAES[0]]), {(r, "") for r in runs}))

    # All (.*) matches a series without the sae label; one SAE's regex does not.
    one_step = [{"labels": fmt("sae_train_step", dict(
        {"run_id": ONE, "rank": str(r)}, **job_labels("training", {"run_id": ONE, "rank": r}))),
        "value": build_values[("sae_train_step", ONE, "")]} for r in range(RANKS)]
    tests.append({"expr": f'sae_train_step{{run_id="{ONE}", sae=~".*"}}', "eval_time": EVAL,
                  "exp_samples": one_step})
    one_sae = grafana_regex_escape(SAES[0])
    tests.append({"expr": f'sae_train_step{{run_id="{ONE}", sae=~"{one_sae}"}}',
                  "eval_time": EVAL, "exp_samples": []})
    # The run's share of step time waiting for data: a wait of 0.25 s a batch and steps of
    # 0.05 + 0.5 s (r-sweep), 0.5 s (r-one; its one SAE's steps take the second SAE's time).
    # A sum over every SAE's wait series would count r-sweep's waits twice (0.476).
    share = [e for t, _, e in queries if t == "Share of step time waiting for data"]
    if len(share) != 1:
        failures.append(f"want one query on panel 'Share of step time waiting for data', got "
                        f"{len(share)}")
    for run, want in ((SWEEP, 0.25 / (0.25 + 0.05 + 0.5)), (ONE, 0.25 / (0.25 + 0.5))):
        for e in share:
            tests.append({"expr": f"abs(({substitute(e, None, run)}) - {want}) < bool 1e-9",
                          "eval_time": EVAL,
                          "exp_samples": [{"labels": f'{{run_id="{run}"}}', "value": 1}]})

    for key in RUN_LEVEL:
        if key not in {(t, r) for t, r, _ in queries}:
            failures.append(f"RUN_LEVEL lists {key}, which is no panel query of the dashboard")
    if checked["per SAE"] < 15:
        failures.append(f"only {checked['per SAE']} per-SAE queries found")
    doc = {"rule_files": [], "evaluation_interval": "1m",
           "tests": [{"interval": f"{INTERVAL_S}s", "input_series": input_series,
                      "promql_expr_test": tests}]}
    text = ("# Generated by tests/deploy/dashboard_sae_test.py from the dashboard JSON.\n" +
            yaml.safe_dump(doc, sort_keys=False, width=1000))
    if a.keep:
        with open(a.keep, "w") as f:
            f.write(text)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "dashboard_sae_test.yml")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run(["promtool", "test", "rules", path], capture_output=True, text=True)
    if r.returncode != 0:
        failures.append("promtool test rules (each failed expr below is a dashboard query, "
                        "substituted):\n" + r.stdout + r.stderr)
    for f in failures:
        print("FAIL", f)
    print(f"dashboard sae variable: {checked['per SAE']} per-SAE and {checked['per run']} "
          f"per-run queries, {len(input_series)} input series, {len(tests)} promtool tests, "
          f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
