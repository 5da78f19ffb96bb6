"""Every output format, as pure functions of data: they return strings (or write to a stream they are
given) and never print, prompt or import click. One module per subject:

plan       a Plan as text, markdown and JSON
github     pull-request comments, check-run annotations and step summaries
progress   apply progress as log lines and JSON lines (the live terminal display is the CLI's)
"""
