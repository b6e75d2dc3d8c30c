"""The trained model on both of its test sets in one process, so that it is loaded once (about
40 s on 2 cores): the held-out NLU set as ``rasa_tools.nlu_score`` scores it, and the conversation
tests as ``rasa test core --fail-on-prediction-errors`` runs them (``rasa.core.test.test`` on the
same agent, without the plots). Run with ``.venv-rasa/bin/python``:

    .venv-rasa/bin/python -m rasa_tools.evaluate --model models/<hash>.tar.gz \\
        --holdout tests/nlu_holdout.yml --stories tests/test_stories.yml --out DIR [--parse TEXT ...]

Writes DIR/report.json: nlu_score's report, and under ``stories`` whether every conversation
test passed and, if not, the failed stories (or Rasa's message about the first wrong prediction).
tests/conftest.py (``rasa_evaluation``) runs it once for tests/test_nlu.py and tests/test_rasa.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from rasa_tools.nlu_score import score


async def evaluate(model: Path, holdout: Path, stories: Path, out: Path, texts: list[str]) -> dict[str, Any]:
    from rasa.core.agent import Agent
    from rasa.core.test import WrongPredictionException
    from rasa.core.test import test as test_core

    agent = Agent.load(str(model))
    if not agent.is_ready():
        raise SystemExit(f"{model}: the model did not load a processor")
    report = await score(model, holdout, texts, agent=agent)
    try:
        await test_core(str(stories), agent, out_directory=str(out), fail_on_prediction_errors=True,
                        disable_plotting=True)
        report["stories"] = {"passed": True, "failure": ""}
    except WrongPredictionException as wrong:
        failed = out / "failed_test_stories.yml"
        detail = failed.read_text()[:4000] if failed.exists() else str(wrong)[-4000:]
        report["stories"] = {"passed": False, "failure": detail}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--holdout", required=True, type=Path)
    parser.add_argument("--stories", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--parse", action="append", default=[], metavar="TEXT",
                        help="also parse TEXT and include the result in the report")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.ERROR)
    args.out.mkdir(parents=True, exist_ok=True)
    report = asyncio.run(evaluate(args.model, args.holdout, args.stories, args.out, args.parse))
    (args.out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(f"intent F1 {report['intent_f1_weighted']:.4f}, entity span F1 "
          f"{report['entity_report']['micro']['f1']:.4f}, conversation tests "
          f"{'passed' if report['stories']['passed'] else 'FAILED'}: {args.out / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
