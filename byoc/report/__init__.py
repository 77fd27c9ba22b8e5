"""Outputs of a partition plan for people and viewers.

- :func:`write_html_report`: one self-contained HTML page with the partitions, a legend and
  the graph drawn as SVG, every node explaining where it went and why.
- :func:`export_partitioned_onnx` / :func:`write_partitioned_onnx`: the partition graph as an
  ONNX model, one ``byoc.partition`` node per partition, for Netron and friends.
- :func:`format_explanation`: the same explanations as plain text for a terminal, one block
  per node (``byoc compile --explain``).
"""

from byoc.report.explain import format_explanation
from byoc.report.html import render_html_report, write_html_report
from byoc.report.onnx_export import export_partitioned_onnx, write_partitioned_onnx

__all__ = ["export_partitioned_onnx", "format_explanation", "render_html_report",
           "write_html_report", "write_partitioned_onnx"]
