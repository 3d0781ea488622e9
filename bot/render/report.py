"""A check report as text, Markdown, JSON or JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from itertools import groupby

from bot.render.templating import render
from checks.model import SECTIONS, Status
from checks.runner import Report

FORMATS = ("text", "json", "markdown", "junit")
ICONS = {
    Status.PASS: "PASS", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.UNKNOWN: "UNKN",
    Status.MANUAL: "MANL", Status.ATTESTED: "ATST", Status.NA: "N/A ",
}  # fmt: skip
EMOJI = {
    Status.PASS: ":white_check_mark:", Status.WARN: ":warning:", Status.FAIL: ":x:",
    Status.UNKNOWN: ":grey_question:", Status.MANUAL: ":raised_hand:", Status.ATTESTED: ":memo:",
    Status.NA: ":heavy_minus_sign:",
}  # fmt: skip


def sections(report: Report) -> list[tuple[str, str, list]]:
    out = []
    for key, group in groupby(report.results, key=lambda r: r.item.section):
        out.append((key, SECTIONS[key], list(group)))
    return out


def render_report(report: Report, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2, default=str) + "\n"
    if fmt == "junit":
        return junit(report)
    template = {"text": "report.txt.j2", "markdown": "report.md.j2"}[fmt]
    return render(template, report=report, sections=sections(report), icons=ICONS, emoji=EMOJI, Status=Status)


def render_check_brief(report: Report) -> str:
    """The check in a few lines: score, buckets, required items failing or unverified, unreachables."""
    return render("report_brief.txt.j2", report=report)


def junit(report: Report) -> str:
    """One testsuite per section, one testcase per item; fail is a failure, unknown an error."""
    root = ET.Element("testsuites", name=f"lsready {report.target}")
    for key, name, results in sections(report):
        suite = ET.SubElement(root, "testsuite", name=f"{key}. {name}", tests=str(len(results)))
        counts = {"failures": 0, "errors": 0, "skipped": 0}
        for r in results:
            case = ET.SubElement(
                suite, "testcase", classname=f"lsready.{report.target}.{key}", name=r.item.id,
                time=f"{r.duration_s:.3f}",
            )  # fmt: skip
            if r.status is Status.FAIL:
                counts["failures"] += 1
                ET.SubElement(case, "failure", message=r.summary, type="fail").text = r.item.remediation
            elif r.status is Status.UNKNOWN:
                counts["errors"] += 1
                ET.SubElement(case, "error", message=r.summary, type="unknown")
            elif r.status in (Status.NA, Status.MANUAL):
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=f"{r.status.value}: {r.summary}")
            ET.SubElement(case, "system-out").text = f"{r.status.value}: {r.summary}"
        for k, v in counts.items():
            suite.set(k, str(v))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
