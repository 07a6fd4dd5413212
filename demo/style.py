"""The page's CSS: the layout on a phone (390 px wide) and on a projector (1920 px), the "Large
text" switch, the search results with their whole captions, the pixel-art images kept sharp.

Gradio copies each custom rule scoped to the page (`.gradio-container … .contain RULE`) and keeps
top-level rules as written too; rules inside @media are only scoped, so there they name the page's
own elements (`#tabs-col`), never :root.
"""
from __future__ import annotations


def _text_sizes(scale: float) -> str:
    """CSS declarations that make the theme's text `scale` times larger. Set on the page's three
    parts (Gradio scopes a custom rule inside @media to the page's elements, so :root cannot be
    reached there), with the sizes the theme derives from them, which the page's root computed already."""
    sizes = {"xxs": 9, "xs": 10, "sm": 12, "md": 14, "lg": 16, "xl": 22, "xxl": 26}  # gr.themes.Soft's
    derived = {"md": ["body", "prose", "input", "checkbox-label", "block-title", "section-header", "button-medium"],
               "sm": ["block-label", "block-info", "button-small"], "lg": ["button-large"]}
    rules = [f"--text-{name}: {round(px * scale)}px;" for name, px in sizes.items()]
    rules += [f"--{name}-text-size: var(--text-{size});" for size, names in derived.items() for name in names]
    return " ".join(rules)


CSS = """
#image img { image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain; }
#examples img, #results img { image-rendering: pixelated; }
#header { margin-bottom: 0; }
#header-tools { justify-content: center; }
.step-table { min-width: 200px; max-width: 100%; overflow-x: auto; }
#about-card td:not(:first-child) { white-space: nowrap; }  /* a number never breaks across lines */
/* search results: every tile in view (no inner scrolling) and its whole caption under the picture */
#results .grid-wrap { height: auto !important; max-height: none !important; overflow: visible !important; }
#results .thumbnail-item { aspect-ratio: auto !important; height: auto !important; display: flex;
  flex-direction: column; overflow: visible; }
#results .thumbnail-item img { aspect-ratio: 1; width: 100%; height: auto; }
#results .caption-label { position: static !important; white-space: normal !important; overflow: visible !important;
  text-overflow: clip !important; max-width: none !important; margin: 0; padding: 4px 6px; text-align: left;
  font-size: var(--text-sm); line-height: 1.3; background: none; color: var(--body-text-color); }
/* a phone: the tabs right under the image (its note and the examples after them), every search result in view,
   the Learn tables under their explanations, scrolling sideways when wider than the screen */
@media (max-width: 640px) {
  #header h1 { font-size: 1.3rem !important; }
  #header-row { flex-wrap: wrap; }
  #header-row > * { flex: 1 1 100% !important; }
  .step-row { flex-direction: column; }
  .step-row > * { width: 100%; }
  .step-table { min-width: 0 !important; }
  #image-col { display: contents; }
  #image-col > * { flex: 1 1 100%; min-width: 0; }
  #scene-note, #examples { order: 2; }
  #tabs-col { order: 1; }
  #image { height: 220px !important; }
  .tab-wrapper button { padding: 0 4px; font-size: 11px; }
  #results .grid-wrap .grid-container { grid-template-columns: repeat(2, minmax(0, 1fr)) !important; }
}
/* a projector (or the "Large text" switch): text readable from the back of a room; see `_text_sizes` */
@media (min-width: 1800px) { #header-row, #image-col, #tabs-col { PROJECTOR } #text-map { TEXT_MAP } #text-map img {
  TEXT_MAP_IMAGE } }
/* the switch: ids twice, to win over the projector's rule, which Gradio's scoping makes more specific */
html.vlp-large #header-row#header-row, html.vlp-large #image-col#image-col, html.vlp-large #tabs-col#tabs-col {
  LARGE }
html.vlp-large #text-map#text-map { TEXT_MAP } html.vlp-large #text-map#text-map img { TEXT_MAP_IMAGE }
"""
# the text self-attention table (520 px high on a laptop) grows with the text, its picture scaled up
# with it (Gradio only ever scales pictures down): the numbers in its cells read from the back of a room
TEXT_MAP_HEIGHT = 820
CSS = (CSS.replace("PROJECTOR", _text_sizes(1.3)).replace("LARGE", _text_sizes(1.6))
       .replace("TEXT_MAP_IMAGE", "object-fit: contain !important;")
       .replace("TEXT_MAP", f"height: {TEXT_MAP_HEIGHT}px !important;"))
