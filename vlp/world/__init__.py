"""Shapes World: the scene generator, renderer, captioner, parser and question maker.

The specification is docs/world.md. A scene is a few coloured shapes on a light background,
described by a small JSON dict; everything here (pixels, captions, questions, answers) is a pure
function of that dict, so every answer the model gives can be checked.

    scene = sample_scene("train", 0)        # the same scene on every run
    image = render(scene)                   # 64x64 RGB PIL image
    caption(scene)                          # 'a large red circle to the left of a small blue square'
    sample_question(scene, rng)             # ('what color is the square?', 'blue', 'color')
    caption_correct(text, scene)            # docs/world.md's rule for judging a caption

One module a concern: `scene` (objects, scenes, JSON, relations, seeded splits), `draw`
(colours, rendering), `language` (captions, parsing, near misses), `questions` (templates,
answers, the vocabulary), `phrasing` (questions in people's words, by family), `reading` (the true answer to a typed
question), `likeness` (how much an image looks like a scene), `cli` (the
`python -m vlp world` command).
"""
from vlp.world.draw import COLOR_RGB, object_colors, render, render_array, scene_image, scene_items
from vlp.world.language import (
    COUNT_WORDS,
    Description,
    caption,
    caption_correct,
    count_phrase,
    holds,
    mention,
    near_miss,
    paraphrase,
    parse,
    swap_relation,
    with_synonyms,
    words,
)
from vlp.world.likeness import Likeness, likeness
from vlp.world.phrasing import FAMILIES, WHERE_ANSWERS, absent_answer, converse, sample_phrased, where
from vlp.world.questions import QUESTION_TYPES, all_answers, answer_set, question_types, sample_question, vocabulary
from vlp.world.reading import true_answer
from vlp.world.scene import (
    COLORS,
    HELD_OUT,
    RELATIONS,
    SHAPES,
    SIDE_RANGE,
    SIZES,
    SPLITS,
    Obj,
    Scene,
    above,
    left_of,
    sample_scene,
    scene_rng,
    scenes,
)
