"""Score a trained model on the held-out NLU set (run with ``.venv-rasa/bin/python``).

    .venv-rasa/bin/python -m rasa_tools.nlu_score --model models/<hash>.tar.gz \
        [--holdout tests/nlu_holdout.yml] [--out results/nlu_holdout.json] [--parse TEXT ...]

Labels are full intents: a clinic question counts as right only when the
ResponseSelector also picks the right ``faq/<key>``; a FallbackClassifier
``nlu_fallback`` counts as wrong. Writes a JSON report with the weighted intent
F1, the per-label report, every misclassified example, entity span F1 and the
parses of the ``--parse`` texts (tests/test_nlu.py asserts on those), and
prints a short summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

RETRIEVAL_INTENT = "faq"


def full_label(parse: dict[str, Any]) -> str:
    """The predicted intent, with the ResponseSelector's sub-intent for ``faq``."""
    intent = (parse.get("intent") or {}).get("name") or "None"
    if intent == RETRIEVAL_INTENT:
        selected = (parse.get("response_selector") or {}).get(RETRIEVAL_INTENT) or {}
        key = (selected.get("response") or {}).get("intent_response_key")
        return key or intent
    return intent


def entity_spans(entities: list[dict[str, Any]]) -> set[tuple[str, int, int]]:
    return {(e["entity"], int(e["start"]), int(e["end"])) for e in entities}


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def slim(parse: dict[str, Any]) -> dict[str, Any]:
    return {
        "text": parse.get("text"),
        "intent": full_label(parse),
        "confidence": round(float((parse.get("intent") or {}).get("confidence") or 0.0), 4),
        "entities": [
            {k: e.get(k) for k in ("entity", "value", "start", "end", "extractor")}
            for e in parse.get("entities") or []
        ],
    }


async def score(model: Path, holdout: Path, texts: list[str], agent: Any = None) -> dict[str, Any]:
    """The report of ``model`` (or of ``agent``, that model already loaded: rasa_tools.evaluate)."""
    from rasa.core.agent import Agent
    from rasa.shared.nlu.training_data.loading import load_data
    from sklearn.metrics import classification_report, precision_recall_fscore_support

    agent = agent or Agent.load(str(model))
    examples = [m for m in load_data(str(holdout)).intent_examples]

    gold: list[str] = []
    pred: list[str] = []
    errors: list[dict[str, Any]] = []
    counts: dict[str, list[int]] = {}  # entity -> [tp, fp, fn]
    for message in examples:
        text = message.get("text")
        expected = message.get("intent_response_key") or message.get("intent")
        parse = await agent.parse_message(text)
        got = full_label(parse)
        gold.append(expected)
        pred.append(got)
        want_spans = entity_spans(message.get("entities") or [])
        got_spans = entity_spans(parse.get("entities") or [])
        for name in {s[0] for s in want_spans | got_spans}:
            c = counts.setdefault(name, [0, 0, 0])
            w = {s for s in want_spans if s[0] == name}
            g = {s for s in got_spans if s[0] == name}
            c[0] += len(w & g)
            c[1] += len(g - w)
            c[2] += len(w - g)
        if got != expected or want_spans != got_spans:
            errors.append({"expected_intent": expected, **slim(parse),
                           "expected_entities": sorted(want_spans)})

    labels = sorted(set(gold))
    _, _, f1, _ = precision_recall_fscore_support(gold, pred, labels=labels, average="weighted",
                                                  zero_division=0)
    base = [g.split("/")[0] for g in gold], [p.split("/")[0] for p in pred]
    _, _, base_f1, _ = precision_recall_fscore_support(*base, labels=sorted(set(base[0])),
                                                       average="weighted", zero_division=0)
    per_entity = {name: {**prf(*c), "support": c[0] + c[2]} for name, c in sorted(counts.items())}
    total = [sum(c[i] for c in counts.values()) for i in range(3)]
    return {
        "model": str(model),
        "holdout": str(holdout),
        "examples": len(gold),
        "intent_f1_weighted": round(float(f1), 4),
        "base_intent_f1_weighted": round(float(base_f1), 4),
        "accuracy": round(sum(g == p for g, p in zip(gold, pred)) / len(gold), 4),
        "intent_report": classification_report(gold, pred, labels=labels, output_dict=True,
                                               zero_division=0),
        "entity_report": {"micro": prf(*total), **per_entity},
        "errors": errors,
        "parses": [slim(await agent.parse_message(t)) for t in texts],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--holdout", type=Path, default=Path("tests/nlu_holdout.yml"))
    parser.add_argument("--out", type=Path, default=Path("results/nlu_holdout.json"))
    parser.add_argument("--parse", action="append", default=[], metavar="TEXT",
                        help="also parse TEXT and include the result in the report")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.ERROR)  # else every parse is logged at debug level

    report = asyncio.run(score(args.model, args.holdout, args.parse))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))

    print(f"held-out examples: {report['examples']}")
    print(f"intent F1 (weighted, faq sub-intents as labels): {report['intent_f1_weighted']:.4f}")
    print(f"intent F1 (weighted, faq as one intent):         {report['base_intent_f1_weighted']:.4f}")
    print(f"entity span F1 (micro):                          {report['entity_report']['micro']['f1']:.4f}")
    for err in report["errors"]:
        print(f"  {err['expected_intent']:>28} -> {err['intent']:<28} {err['confidence']:.2f}  {err['text']}"
              + ("" if err["intent"] != err["expected_intent"] else
                 f"  entities {[(e['entity'], e['value']) for e in err['entities']]}"
                 f" want {err['expected_entities']}"))
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
