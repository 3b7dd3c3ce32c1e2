"""Research reporting: compare sweep runs from their run directories, and label runs in W&B.

`kosum-report` (kosum.cli.report) reads only local files (results.json, predictions.jsonl,
metrics.csv, .hydra/) and writes report.md, report.html, results.csv and plots:
collect (find runs) → aggregate (statistics, significance) → plots → render, tied by build.
`tracking` names and tags W&B runs with the same labels the report uses.
"""
