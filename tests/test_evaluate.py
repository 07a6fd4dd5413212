"""The evaluation scores what a model says against the scenes: a model that reads the scenes'
truth scores 1, and one blind to a direction is caught in that direction alone."""
from vlp import world
from vlp.evaluate import evaluate
from vlp.protocol import Capabilities


class Reader:
    """Answers from each scene's truth (vlp.world.true_answer); "no" to questions that say `blind`."""

    capabilities = Capabilities(caption=False, answer=True, match=None, embed=False, attention=False)

    def __init__(self, split: str, n: int, blind: str | None = None):
        self.scenes = {world.render(s).tobytes(): s for s in world.scenes(split, n)}
        self.blind = blind

    def answer_many(self, images, questions):
        return ["no" if self.blind and f" {self.blind} " in q else world.true_answer(self.scenes[im.tobytes()], q)
                for im, q in zip(images, questions)]


def test_relations_are_scored_per_direction():
    n = 30
    truthful = evaluate(Reader("test", n), "test", n)
    assert truthful["vqa_accuracy"] == 1.0
    assert truthful["relation_by_direction"] == {"left": 1.0, "right": 1.0, "above": 1.0, "below": 1.0}
    blind = evaluate(Reader("test", n, blind="below"), "test", n)["relation_by_direction"]
    assert blind["left"] == blind["right"] == blind["above"] == 1.0
    assert blind["below"] == 0.5  # right on every "no", wrong on every "yes": balanced accuracy


def test_headline_metrics_skip_the_extension():
    quick = evaluate(Reader("val", 10), "val", 10, headline=True)
    assert quick["vqa_accuracy"] == 1.0
    assert "relation_by_direction" not in quick and "natural_vqa_accuracy" not in quick
