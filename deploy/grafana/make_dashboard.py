#!/usr/bin/python3
"""Writes deploy/grafana/dashboards/sae-training.json, the "SAE training" Grafana dashboard.

The dashboard is generated so that its conventions hold on every panel: each query is filtered by
the run variable, values that every trainer rank holds alike after the all-reduce are taken once
per run (max by run_id) instead of once per rank, and per-rank counters are summed over ranks.
A run can train many SAEs from one stream (docs/config.md): the trainer's sae_train_* series
then carry an `sae` label (the SAE's name; a run of one SAE has none). Every per-SAE quantity is
filtered by the `sae` variable and grouped by (run_id, sae) as well, so that a run of many SAEs
draws one line per SAE; its All value `.*` also matches the series without the label.
tests/deploy checks that the committed JSON is this script's output, that every query returns
data against a real run, and (dashboard_sae_test.py, promtool) that the sae variable selects
exactly the SAEs chosen on every per-SAE panel.

  python3 deploy/grafana/make_dashboard.py          # rewrite the JSON
  python3 deploy/grafana/make_dashboard.py --check  # exit 1 if the JSON is stale
"""
import json
import os
import sys

DS = {"type": "prometheus", "uid": "prometheus"}
RUN = 'run_id=~"$run_id"'
SAE = 'sae=~"$sae"'
SAE_VALUES = f"label_values(sae_train_step{{{RUN}}}, sae)"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboards", "sae-training.json")


def once(metric):
    """An all-reduced training gauge, one line per run."""
    return f"max by (run_id) ({metric}{{{RUN}}})"


def once_sae(metric):
    """An all-reduced training gauge of each SAE, one line per SAE of each run."""
    return f"max by (run_id, sae) ({metric}{{{RUN}, {SAE}}})"


def ranks_sum_rate(counter, window="1m"):
    return f"sum by (run_id) (rate({counter}{{{RUN}}}[{window}]))"


def ranks_sum_rate_sae(counter, window="1m"):
    """A per-rank counter of each SAE (sae_train_tokens_total: every SAE of a run trains on
    every token, so summing over the SAEs too would count each token once per SAE)."""
    return f"sum by (run_id, sae) (rate({counter}{{{RUN}, {SAE}}}[{window}]))"


def p95(histogram, by="run_id", window="5m"):
    return (f"histogram_quantile(0.95, sum by (le, {by}) "
            f"(rate({histogram}_bucket{{{RUN}}}[{window}])))")


def p95_sae(histogram, window="5m"):
    return (f"histogram_quantile(0.95, sum by (le, run_id, sae) "
            f"(rate({histogram}_bucket{{{RUN}, {SAE}}}[{window}])))")


# Each rank waits once per batch, but records the wait in every SAE's series (alike), while
# the SAEs step one after another: the rank's wait is the max over its SAEs' series, its step
# time the sum. For a run of one SAE this is the plain sum over ranks.
WAIT = ("sum by (run_id) (max by (run_id, rank) "
        f"(rate(sae_train_wait_for_data_seconds_sum{{{RUN}}}[5m])))")
WAIT_SHARE = (f"{WAIT} / ({WAIT} + "
              f"sum by (run_id) (rate(sae_train_step_duration_seconds_sum{{{RUN}}}[5m])))")
ETA = (f"({once('sae_controller_run_total_tokens')} - {once('sae_controller_run_tokens')}) / "
       f"(max by (run_id) (deriv(sae_controller_run_tokens{{{RUN}}}[5m])) > 0)")

# (row title, [(panel title, unit, [(expr, legend)], kind)])
ROWS = [
    ("Progress", [
        ("Progress (tokens trained / total)", "percentunit",
         [(f"{once('sae_controller_run_tokens')} / {once('sae_controller_run_total_tokens')}",
           "{{run_id}}")], "stat"),
        ("Time to finish (at the last 5 minutes' pace)", "s", [(ETA, "{{run_id}}")], "stat"),
        ("Checkpoint age", "s",
         [(f"time() - {once('sae_controller_checkpoint_last_commit_timestamp_seconds')}",
           "{{run_id}}")], "stat"),
        ("Throughput (tokens/s, all ranks)", "short",
         [(ranks_sum_rate_sae("sae_train_tokens_total"), "trained {{run_id}} {{sae}}"),
          (ranks_sum_rate("sae_activation_generated_tokens_total"), "generated {{run_id}}")],
         "timeseries"),
    ]),
    ("Training (the seed's metrics, once per SAE of a run)", [
        ("Losses", "short",
         [(once_sae("sae_train_overall_loss"), "overall {{run_id}} {{sae}}"),
          (once_sae("sae_train_mse_loss"), "mse {{run_id}} {{sae}}"),
          (once_sae("sae_train_ghost_grad_loss"), "ghost {{run_id}} {{sae}}"),
          (once_sae("sae_train_aux_loss"), "auxk {{run_id}} {{sae}}")], "timeseries"),
        ("L1 (sum |f|, no coefficient)", "short",
         [(once_sae("sae_train_l1_loss"), "{{run_id}} {{sae}}")], "timeseries"),
        ("L0 (active features per token)", "short",
         [(once_sae("sae_train_l0"), "{{run_id}} {{sae}}")], "timeseries"),
        ("Explained variance", "short",
         [(once_sae("sae_train_explained_variance"), "mean {{run_id}} {{sae}}"),
          (once_sae("sae_train_explained_variance_std"), "std {{run_id}} {{sae}}")],
         "timeseries"),
        ("Dead-feature fraction", "percentunit",
         [(f"{once_sae('sae_train_dead_features')} / {once_sae('sae_train_latents')}",
           "{{run_id}} {{sae}}")],
         "timeseries"),
        ("L2 ratio (|x_hat| / |x|)", "short",
         [(once_sae("sae_train_l2_ratio"), "{{run_id}} {{sae}}")], "timeseries"),
        ("Mean log10 feature sparsity", "short",
         [(once_sae("sae_train_mean_log10_feature_sparsity"), "{{run_id}} {{sae}}")],
         "timeseries"),
        ("Learning rate and L1 coefficient", "short",
         [(once_sae("sae_train_learning_rate"), "lr {{run_id}} {{sae}}"),
          (once_sae("sae_train_l1_coefficient"), "l1 coefficient {{run_id}} {{sae}}")],
         "timeseries"),
        # The controller keeps one newest evaluation per run (sae_controller_run_eval_*, no sae
        # label): in a run of many SAEs, that of the SAE evaluated last. Not filtered by SAE.
        ("Evaluation scores (the run's newest, of any SAE)", "short",
         [(once("sae_controller_run_eval_ce_loss_score"), "CE-loss score {{run_id}}"),
          (once("sae_controller_run_eval_kl_div_score"), "KL score {{run_id}}"),
          (once("sae_controller_run_eval_explained_variance"), "explained variance {{run_id}}")],
         "timeseries"),
    ]),
    ("Where the time goes", [
        ("Share of step time waiting for data", "percentunit", [(WAIT_SHARE, "{{run_id}}")],
         "timeseries"),
        ("Step, data wait and all-reduce (p95)", "s",
         [(p95_sae("sae_train_step_duration_seconds"), "step {{run_id}} {{sae}}"),
          # Alike in every SAE's series (one wait per batch): the run's, not filtered by SAE.
          (p95("sae_train_wait_for_data_seconds"), "data wait {{run_id}}"),
          (p95_sae("sae_train_allreduce_duration_seconds"), "all-reduce {{run_id}} {{sae}}")],
         "timeseries"),
        ("Prefetch queue (batches, per rank)", "short",
         [(f"sae_train_prefetch_queue_batches{{{RUN}}}", "{{run_id}} rank {{rank}}")],
         "timeseries"),
    ]),
    ("Activation servers", [
        ("Tokens generated per second (per server)", "short",
         [(f"rate(sae_activation_generated_tokens_total{{{RUN}}}[1m])",
           "{{run_id}} server {{server}}")], "timeseries"),
        ("Mixing buffer fill", "percentunit",
         [(f"sae_activation_buffer_fill_ratio{{{RUN}}}", "{{run_id}} server {{server}}")],
         "timeseries"),
        ("Forward duration (p95)", "s",
         [(p95("sae_activation_forward_duration_seconds", by="run_id, server"),
           "{{run_id}} server {{server}}")], "timeseries"),
        ("Stream out (bytes/s)", "Bps",
         [(f"rate(sae_stream_sent_bytes_total{{{RUN}}}[1m])", "{{run_id}} server {{server}}")],
         "timeseries"),
        ("Activations served per second", "short",
         [(f"rate(sae_stream_served_activations_total{{{RUN}}}[1m])",
           "{{run_id}} server {{server}}")], "timeseries"),
        ("Consumers and resent batches", "short",
         [(f"sae_stream_active_consumers{{{RUN}}}", "consumers {{run_id}} server {{server}}"),
          (f"increase(sae_stream_resent_batches_total{{{RUN}}}[5m])",
           "resent {{run_id}} server {{server}}")], "timeseries"),
    ]),
    ("Trainers' streams", [
        ("Stream in (bytes/s, all ranks)", "Bps",
         [(ranks_sum_rate("sae_stream_received_bytes_total"), "{{run_id}}")], "timeseries"),
        ("Reconnects and servers up", "short",
         [(f"sum by (run_id) (increase(sae_stream_reconnects_total{{{RUN}}}[5m]))",
           "reconnects {{run_id}}"),
          (f"min by (run_id, server) (sae_stream_server_up{{{RUN}}})",
           "up {{run_id}} server {{server}}")], "timeseries"),
    ]),
    ("Controller", [
        ("Runs by state (all runs)", "short", [("sae_controller_runs", "{{state}}")],
         "timeseries"),
        ("Workers by role and state (all runs)", "short",
         [("sae_controller_workers", "{{role}} {{state}}")], "timeseries"),
        ("Restarts and checkpoints", "short",
         [(f"increase(sae_controller_restarts_total{{{RUN}}}[1h])", "restarts {{run_id}}"),
          (f"increase(sae_controller_checkpoints_total{{{RUN}}}[1h])", "checkpoints {{run_id}}")],
         "timeseries"),
        ("Checkpoint bytes uploaded", "Bps",
         [(f"rate(sae_controller_checkpoint_bytes_total{{{RUN}}}[5m])", "{{run_id}}")],
         "timeseries"),
        ("Checkpoint upload duration (p95, all runs)", "s",
         [("histogram_quantile(0.95, sum by (le) "
           "(rate(sae_controller_checkpoint_upload_duration_seconds_bucket[1h])))", "p95")],
         "timeseries"),
    ]),
]

ANNOTATIONS = [
    ("Restarts", "red", f"changes(sae_controller_restarts_total{{{RUN}}}[1m]) > 0",
     "restart of {{run_id}}"),
    ("Checkpoints", "blue", f"changes(sae_controller_checkpoints_total{{{RUN}}}[1m]) > 0",
     "checkpoint of {{run_id}}"),
]


def panel(pid, title, unit, targets, kind, x, y):
    width = 6 if kind == "stat" else 8
    p = {
        "type": kind, "title": title, "id": pid, "datasource": DS,
        "gridPos": {"h": 5 if kind == "stat" else 8, "w": width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": chr(ord("A") + i), "expr": e, "legendFormat": legend,
                     "datasource": DS} for i, (e, legend) in enumerate(targets)],
    }
    if kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "textMode": "value_and_name"}
    return p


def dashboard():
    panels, pid, y = [], 1, 0
    for row_title, row_panels in ROWS:
        panels.append({"type": "row", "title": row_title, "id": pid, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid, y, x, height = pid + 1, y + 1, 0, 0
        for title, unit, targets, kind in row_panels:
            p = panel(pid, title, unit, targets, kind, x, y)
            w, h = p["gridPos"]["w"], p["gridPos"]["h"]
            if x + w > 24:
                x, y = 0, y + height
                p["gridPos"].update(x=0, y=y)
            panels.append(p)
            pid, x, height = pid + 1, x + w, max(height, h)
        y += height
    return {
        "title": "SAE training", "uid": "sae-training", "schemaVersion": 37, "version": 2,
        "time": {"from": "now-1h", "to": "now"}, "refresh": "10s", "tags": ["sae"],
        "annotations": {"list": [
            {"name": name, "enable": True, "iconColor": color, "datasource": DS, "expr": expr,
             "titleFormat": name, "textFormat": text, "step": "60s"}
            for name, color, expr, text in ANNOTATIONS]},
        "templating": {"list": [{
            "name": "run_id", "label": "run", "type": "query", "datasource": DS,
            "query": {"query": "label_values(sae_controller_run_step, run_id)", "refId": "run_id"},
            "definition": "label_values(sae_controller_run_step, run_id)",
            "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
            "current": {"text": "All", "value": "$__all"}}, {
            # The SAEs of the chosen runs (a run of many SAEs; a run of one has no sae label).
            # All is `.*`, which also matches a series without the label.
            "name": "sae", "label": "SAE", "type": "query", "datasource": DS,
            "query": {"query": SAE_VALUES, "refId": "sae"}, "definition": SAE_VALUES,
            "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2, "sort": 1,
            "current": {"text": "All", "value": "$__all"}}]},
        "panels": panels,
    }


def main():
    text = json.dumps(dashboard(), indent=2) + "\n"
    if "--check" in sys.argv[1:]:
        if open(OUT).read() != text:
            print(f"{OUT} is not make_dashboard.py's output: run python3 {__file__}")
            return 1
        return 0
    with open(OUT, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
