"""``reconciler gallery``: a static HTML contact sheet of what apply rendered.

Modules, from the edge inwards:
  downloads.py  the downloads folder: its layout, the bounded previous versions apply keeps,
                and the record of the last apply (stdlib only: fetch.py imports it)
  build.py      I/O: read the state and the folder, hash, make thumbnails and posters, write
  model.py      pure: state records + a file listing + hashes -> cards, counts and pages
  pages.py      pure: the model -> HTML (Jinja2 templates, autoescaped), plus the static assets
  command.py    the click command
"""
