"""How many findings on the corpus's buggy cases come with a verified fix recipe (issue 13's evidence).

`python benchmarks/fix_evidence.py [pytorch|keras|onnx ...] [--pattern GLOB] [-v]` prints one line per unverified
error finding (with why) and the share per framework. Runs every case in ../shared/corpus and fixtures/corpus.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import corpus  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("frameworks", nargs="*", default=["pytorch", "keras", "onnx"])
    parser.add_argument("--pattern", default="*")
    parser.add_argument("-v", "--verbose", action="store_true", help="also list the verified findings")
    args = parser.parse_args()
    total = Counter()
    for framework in args.frameworks:
        counts, missing = Counter(), Counter()
        for path in corpus.case_files(framework, args.pattern):
            run = corpus.run_case(path)
            for finding in (f for f in run.buggy if f.severity == "error"):
                verified = any(fix.verified for fix in finding.fixes)
                counts["findings"] += 1
                counts["verified"] += verified
                counts["trained"] += any(fix.verified and "training step on" in fix.evidence for fix in finding.fixes)
                if not verified:
                    missing[finding.rule] += 1
                if not verified or args.verbose:
                    why = "; ".join(f"{fix.title[:40]}: {fix.evidence or 'advice, no edit'}" for fix in finding.fixes)
                    print(f"{'ok  ' if verified else 'MISS'} {run.case:<44} {finding.rule} {finding.layer}: {why}")
        total.update(counts)
        share = counts["verified"] / counts["findings"] if counts["findings"] else 0
        print(f"{framework}: {counts['verified']}/{counts['findings']} error findings have a verified recipe "
              f"({share:.0%}); {counts['trained']} confirmed by a training step; unverified by rule: "
              f"{dict(missing.most_common())}")
    if len(args.frameworks) > 1 and total["findings"]:
        print(f"all: {total['verified']}/{total['findings']} ({total['verified'] / total['findings']:.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
