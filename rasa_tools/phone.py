"""Phone numbers come from the regex, not from DIET.

DIET tags tokens, and the WhitespaceTokenizer drops the brackets in "(212) 555-0142",
so DIET's phone entities come out in pieces ("(212", "555-0142"). This extractor runs
after DIET: it finds phone numbers with the `phone` regex of the training data
(data/nlu/lookups.yml) and replaces whatever DIET said about `phone` with those
whole matches (the longest one where two patterns overlap). The action server still
validates and normalises the number (bot.phone).

Pipeline entry (config.yml): `- name: rasa_tools.phone.PhoneEntityExtractor`, placed
after DIETClassifier. Rasa imports it from the project root (the working directory of
`rasa train` / `rasa run`).
"""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.nlu.extractors.regex_entity_extractor import RegexEntityExtractor
from rasa.shared.nlu.constants import ENTITIES
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

PHONE = "phone"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=True)
class PhoneEntityExtractor(RegexEntityExtractor):
    """RegexEntityExtractor for `phone` that overrides DIET's phone entities."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {**RegexEntityExtractor.get_default_config(), "use_lookup_tables": False}

    def train(self, training_data: TrainingData) -> Resource:
        resource = super().train(training_data)
        self.patterns = [p for p in self.patterns if p["name"] == PHONE]
        self.persist()
        return resource

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            found = self.add_extractor_name(_longest_first(self._extract_entities(message)))
            kept = [e for e in message.get(ENTITIES, []) if e.get("entity") != PHONE]
            message.set(ENTITIES, kept + found, add_to_output=True)
        return messages


def _longest_first(entities: List[Dict[Text, Any]]) -> List[Dict[Text, Any]]:
    """Drop matches that overlap a longer match."""
    chosen: List[Dict[Text, Any]] = []
    for ent in sorted(entities, key=lambda e: e["start"] - e["end"]):
        if all(ent["end"] <= c["start"] or ent["start"] >= c["end"] for c in chosen):
            chosen.append(ent)
    return sorted(chosen, key=lambda e: e["start"])


__all__ = ["PhoneEntityExtractor"]
