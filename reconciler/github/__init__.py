"""GitHub side of the GitOps kit: plan comments, labels, annotations and apply reports.

``reconciler github …`` reads what GitHub Actions provides (``GITHUB_TOKEN``,
``GITHUB_REPOSITORY``, ``GITHUB_API_URL``, ``GITHUB_EVENT_PATH``, ``GITHUB_STEP_SUMMARY``)
and talks to GitHub's REST API (and GraphQL, for ``minimizeComment``) over httpx. The text
it posts is made by the pure functions of ``reconciler.views.github``. Plans and apply
streams are read from files, never from the environment or the command line.
"""
