"""The FAQ ResponseSelector, run only on messages classified as `faq`.

Rasa's ResponseSelector runs its model on every message and writes its pick under
`response_selector` in the parse result, whatever the intent; Rasa uses that pick only when
the message's intent is the retrieval intent (`faq`: the full retrieval intent such as
`faq/parking` and the `utter_faq` answer). On a booking turn it was about 7 ms of TensorFlow
for an answer nobody reads. This subclass runs the model only when DIET's intent is `faq`; other
messages pass through with no `faq` pick (and still list `all_retrieval_intents`, as Rasa's does).
The FallbackClassifier comes after it and can only turn `faq` into `nlu_fallback`, never the
other way, so every message that ends up `faq` still gets its pick.

Pipeline entry (config.yml): `- name: rasa_tools.faq_selector.FaqResponseSelector` with the same
settings as a ResponseSelector.
"""

from __future__ import annotations

from typing import List

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.constants import RESPONSE_SELECTOR_PROPERTY_NAME, RESPONSE_SELECTOR_RETRIEVAL_INTENTS
from rasa.nlu.selectors.response_selector import ResponseSelector
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY
from rasa.shared.nlu.training_data.message import Message


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class FaqResponseSelector(ResponseSelector):
    """ResponseSelector that skips messages whose intent is not its retrieval intent."""

    def process(self, messages: List[Message]) -> List[Message]:
        mine = [m for m in messages if self._is_mine(m)]
        for message in messages:
            if not self._is_mine(message):
                properties = message.get(RESPONSE_SELECTOR_PROPERTY_NAME, {})
                properties[RESPONSE_SELECTOR_RETRIEVAL_INTENTS] = self.all_retrieval_intents
                message.set(RESPONSE_SELECTOR_PROPERTY_NAME, properties, add_to_output=True)
        super().process(mine)
        return messages

    def _is_mine(self, message: Message) -> bool:
        if not self.retrieval_intent:
            return True
        return (message.get(INTENT) or {}).get(INTENT_NAME_KEY) == self.retrieval_intent
