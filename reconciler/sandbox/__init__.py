"""A faithful local stand-in for the parts of the VNTANA Admin API the reconciler uses.

Start one with ``reconciler sandbox`` or, in-process, with
``reconciler.sandbox.server.EmbeddedSandbox``. See docs/sandbox.md.
"""
