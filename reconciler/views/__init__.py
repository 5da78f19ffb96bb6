"""Every output format, as pure functions of data: they return strings (or write to a stream they are
given) and never print, prompt or import click. One module per subject:

plan       a Plan as text, markdown and JSON
github     pull-request comments, check-run annotations and step summaries
progress   apply progress as log lines and JSON lines (the live terminal display is the CLI's)
refresh    what --refresh-only accepted
state      the product table, one record, the history and the edits' lines of ``reconciler state``
importing  what ``reconciler import`` found, product by product
doctor     the checks of ``reconciler doctor``
gallery    the gallery's summary once the site is written
webhooks   the organization's webhooks, the reconciler's marked
units      quantities as people read them (byte sizes)
"""
