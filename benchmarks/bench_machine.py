"""Machine-event detection on the labelled synthetic log: precision and recall per rule.

    python benchmarks/bench_machine.py [--messages 4000] [--seed 13]

Prints the Markdown table recorded in benchmarks/README.md ("Machine events"), then the
classifier's totals with every message-level rule, without the weak early-unopened rule, and
with single rules. Not timed: the numbers are counts.
"""

from __future__ import annotations

import argparse

from newsletter.simulate.scanners import ScannerWorld, evaluate, generate_log, report_lines
from newsletter.track.bursts import RULES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    log = generate_log(ScannerWorld(messages=args.messages), seed=args.seed)
    result = evaluate(log)
    print(
        f"{len(log)} requests, {result.machine_clicks} machine clicks in {result.bursts} "
        f"bursts, {result.human_clicks} human clicks\n"
    )
    print("\n".join(report_lines(result)))
    print(
        "\n| message-level rules | burst recall | machine-click recall | human-click precision "
        "| human-click recall |\n| --- | ---: | ---: | ---: | ---: |"
    )
    for rules in (RULES, ("honeypot", "link-burst"), ("honeypot",), ("link-burst",), ()):
        r = evaluate(log, rules=rules)
        name = " + ".join(rules) or "per-request rules only"
        print(
            f"| {name} | {r.burst_recall:.2%} | {r.click_recall:.2%} | "
            f"{r.human_precision:.2%} | {r.human_recall:.2%} |"
        )


if __name__ == "__main__":
    main()
