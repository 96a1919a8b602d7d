"""The node's figures in the Prometheus text format, for ``GET /metrics`` (layer 5)."""

from __future__ import annotations

from tangle.node.node import Node


def prometheus(node: Node) -> str:
    counts = node.counts()
    lines = [
        "# HELP tangle_transactions Transactions attached.",
        "# TYPE tangle_transactions gauge",
        f"tangle_transactions {counts['transactions']}",
        "# HELP tangle_confirmed Transactions confirmed.",
        "# TYPE tangle_confirmed gauge",
        f"tangle_confirmed {counts['confirmed']}",
        "# HELP tangle_tips Unapproved transactions.",
        "# TYPE tangle_tips gauge",
        f"tangle_tips {counts['tips']}",
        "# HELP tangle_in_flight Submissions between their body read and their answer.",
        "# TYPE tangle_in_flight gauge",
        f"tangle_in_flight {node.in_flight}",
        "# HELP tangle_submit_stage_seconds Time accepted submissions spent per stage.",
        "# TYPE tangle_submit_stage_seconds summary",
        *(
            line
            for stage, seconds in node.stages.seconds.items()
            for line in (
                f'tangle_submit_stage_seconds_sum{{stage="{stage}"}} {seconds:.6f}',
                f'tangle_submit_stage_seconds_count{{stage="{stage}"}} {node.stages.count}',
            )
        ),
        "# HELP tangle_unsolid Transactions waiting for parents.",
        "# TYPE tangle_unsolid gauge",
        f"tangle_unsolid {counts['unsolid']}",
        "# HELP tangle_storage_commits Group commits written.",
        "# TYPE tangle_storage_commits counter",
        f"tangle_storage_commits_total {counts['storage_commits']}",
        "# HELP tangle_storage_rows Transactions written to the database.",
        "# TYPE tangle_storage_rows counter",
        f"tangle_storage_rows_total {counts['storage_rows']}",
        "# HELP tangle_throughput_tps Transactions per second over the last 10 s.",
        "# TYPE tangle_throughput_tps gauge",
        f"tangle_throughput_tps {node.throughput():.3f}",
    ]
    return "\n".join(lines) + "\n"
