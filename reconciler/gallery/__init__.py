"""``reconciler gallery``: a static HTML contact sheet of what apply rendered.

Modules, from the edge inwards:
  after_apply.py  what apply asks of the gallery: where downloads go, and the site after a sandbox run
  build.py        I/O: read the state and the folder, hash, make thumbnails and posters, write
  model.py        pure: state records + a file listing + hashes -> cards, counts and pages
  pages.py        pure: the model -> HTML (Jinja2 templates, autoescaped), plus the static assets

The downloads folder's layout (and the previous versions apply keeps) is reconciler.downloads;
the command is reconciler.cli.gallery and its summary reconciler.views.gallery.
"""
